package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is the CPU time a phase used over its timed window: the bench
// process's own (serve, devices and clients, as the phase has them), its
// Mosquitto's and its influxd's, and how busy the machine's CPUs were in
// all (other processes included). ok is false where Linux's /proc cannot
// tell (another system): the figures are then left out.
type cpuUse struct {
	bench, mosquitto, influxd time.Duration
	busy                      float64 // share of all CPUs' time, 0 to 1
	ok                        bool
}

func (c cpuUse) total() time.Duration { return c.bench + c.mosquitto + c.influxd }

// perMessage is the phase's CPU time per message of msgs.
func (c cpuUse) perMessage(msgs int) time.Duration { return c.total() / time.Duration(msgs) }

// cpuMeter reads the counters at the start of a window; since gives the
// use from then.
type cpuMeter struct {
	sv    *phaseServices
	start cpuUse
	busy  [2]uint64 // busy and total jiffies of /proc/stat
}

func startCPUMeter(sv *phaseServices) *cpuMeter {
	m := &cpuMeter{sv: sv}
	m.start, m.busy = m.read()
	return m
}

// since returns the CPU time used since the meter started.
func (m *cpuMeter) since() cpuUse {
	now, busy := m.read()
	if !m.start.ok || !now.ok || busy[1] == m.busy[1] {
		return cpuUse{}
	}
	return cpuUse{
		bench:     now.bench - m.start.bench,
		mosquitto: now.mosquitto - m.start.mosquitto,
		influxd:   now.influxd - m.start.influxd,
		busy:      float64(busy[0]-m.busy[0]) / float64(busy[1]-m.busy[1]),
		ok:        true,
	}
}

func (m *cpuMeter) read() (cpuUse, [2]uint64) {
	var ru syscall.Rusage
	err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	mq, err1 := processCPU(m.sv.mq.Pid())
	in, err2 := processCPU(m.sv.in.Pid())
	busy, err3 := machineBusy()
	c := cpuUse{
		bench:     time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)),
		mosquitto: mq,
		influxd:   in,
		ok:        err == nil && err1 == nil && err2 == nil && err3 == nil,
	}
	return c, busy
}

// clockTick is the unit of /proc's CPU times (USER_HZ), 100 a second on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// processCPU is the user and system time that process pid has used, from
// /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, fmt.Errorf("not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unreadable times", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// machineBusy returns the busy and total time of all CPUs, in clock
// ticks, from the first line of /proc/stat (idle and iowait are idle).
func machineBusy() ([2]uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return [2]uint64{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return [2]uint64{}, fmt.Errorf("/proc/stat: unexpected first line")
	}
	var busy, total uint64
	for i, s := range f[1:9] { // user nice system idle iowait irq softirq steal
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return [2]uint64{}, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return [2]uint64{busy, total}, nil
}
