package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// samplesPrefix starts every samples message (the points of one stored
// device message) as serve marshals it (type is its first field), and
// pointPrefix each of its points (measurement is a point's first field,
// and no tag or field of bench's heart-rate points is so named); a
// message that does not start so is decoded to tell its type and count
// its points.
var (
	samplesPrefix = []byte(`{"type":"samples",`)
	pointPrefix   = []byte(`{"measurement":`)
)

// console is one staff console on serve's /v1/ws, as the consoles of (c)
// hold it: a clinician's, subscribed to their care team, reading every
// message as it comes.
type console struct {
	conn    *websocket.Conn
	want    int64        // samples of its care team that serve stores
	samples atomic.Int64 // samples received (points of samples messages)
	closing atomic.Bool  // bench is closing it: the end of reading is no fault
	done    chan struct{}
	err     error     // why reading ended, once done is closed
	ended   time.Time // when, once done is closed
}

// consoles are the consoles of one run of (c).
type consoles struct {
	all    []*console
	closed sync.Once
}

// openConsoles connects a console for each clinician to the serve at
// url, with their API token, as a dashboard does: it reads hello (which
// must offer the care team) and snapshot, subscribes to the care team and
// waits for the answer. Console i is to receive want[i] samples. Each
// then reads continuously on a goroutine of its own, under the pprof
// label role=consoles, counting the samples. The caller closes them.
func openConsoles(ctx context.Context, url string, staff []clinician, want []int64) (*consoles, error) {
	cs := &consoles{}
	for i, s := range staff {
		c, err := openConsole(ctx, url, s.token, s.team)
		if err != nil {
			cs.close()
			return nil, fmt.Errorf("console %d of %d: %w", i+1, len(staff), err)
		}
		c.want = want[i]
		cs.all = append(cs.all, c)
		go pprof.Do(ctx, pprof.Labels("role", "consoles"), func(context.Context) { c.read() })
	}
	return cs, nil
}

func openConsole(ctx context.Context, url, token string, patients []string) (*console, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	conn, resp, err := dialer.DialContext(ctx, "ws"+strings.TrimPrefix(url, "http")+"/v1/ws", h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket: %s", resp.Status)
		}
		return nil, fmt.Errorf("websocket: %w", err)
	}
	c := &console{conn: conn, done: make(chan struct{})}
	if err := c.subscribe(patients); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// subscribe reads hello and snapshot, subscribes to the patients, and
// reads until serve confirms, within 30 seconds.
func (c *console) subscribe(patients []string) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	next := func() (map[string]json.RawMessage, string, error) {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return nil, "", err
		}
		var m map[string]json.RawMessage
		var typ string
		if err := json.Unmarshal(data, &m); err != nil || json.Unmarshal(m["type"], &typ) != nil {
			return nil, "", fmt.Errorf("unreadable message %.200q", data)
		}
		return m, typ, nil
	}
	for _, want := range []string{"hello", "snapshot"} {
		m, typ, err := next()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", want, err)
		}
		if typ != want {
			return fmt.Errorf("got %q, want %q", typ, want)
		}
		if typ == "hello" {
			var offered []string
			if err := json.Unmarshal(m["patients"], &offered); err != nil {
				return fmt.Errorf("hello: patients: %w", err)
			}
			for _, p := range patients {
				if !slices.Contains(offered, p) {
					return fmt.Errorf("hello does not offer patient %s", p)
				}
			}
		}
	}
	if err := c.conn.WriteJSON(map[string]any{"type": "subscribe", "patients": patients, "batch": true}); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		m, typ, err := next()
		if err != nil {
			return fmt.Errorf("waiting for subscribed: %w", err)
		}
		switch typ {
		case "subscribed":
			return c.conn.SetReadDeadline(time.Time{})
		case "error":
			return fmt.Errorf("subscribe refused: %s", m["error"])
		}
	}
}

// read reads every message until the connection ends, counting the
// points of samples messages, into one reused buffer; pings are answered
// by the websocket library as they are read.
func (c *console) read() {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		_, r, err := c.conn.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			c.err, c.ended = err, time.Now()
			return
		}
		if bytes.HasPrefix(buf.Bytes(), samplesPrefix) {
			c.samples.Add(int64(bytes.Count(buf.Bytes(), pointPrefix)))
			continue
		}
		var m struct {
			Type    string            `json:"type"`
			Samples []json.RawMessage `json:"samples"`
		}
		if json.Unmarshal(buf.Bytes(), &m) == nil && m.Type == "samples" {
			c.samples.Add(int64(len(m.Samples)))
		}
	}
}

// gone reports whether the console's connection ended other than by
// close, and whether serve ended it for falling behind (close code 1008,
// policy violation: its send queue filled).
func (c *console) gone() (gone, evicted bool) {
	select {
	case <-c.done:
	default:
		return false, false
	}
	evicted = websocket.IsCloseError(c.err, websocket.ClosePolicyViolation)
	return evicted || !c.closing.Load(), evicted
}

// drain waits until every console still connected has its care team's
// samples, or until none has come for quiet (serve's live feed may drop
// samples rather than hold up ingest), and returns when the last came.
func (cs *consoles) drain(ctx context.Context, quiet time.Duration) (time.Time, error) {
	var all int64
	for _, c := range cs.all {
		all += c.want
	}
	last, moved := int64(-1), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n, now := cs.received(), time.Now()
		if n != last {
			last, moved = n, now
		}
		if n >= all || now.Sub(moved) >= quiet {
			return moved, nil
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-tick.C:
		}
	}
}

// received is the samples the consoles received in all, counting
// at most its want for each, and for a console that is gone its want: it
// waits for nothing more.
func (cs *consoles) received() int64 {
	var n int64
	for _, c := range cs.all {
		if gone, _ := c.gone(); gone {
			n += c.want
		} else {
			n += min(c.samples.Load(), c.want)
		}
	}
	return n
}

// figures puts the consoles' counts into f: their samples against
// their care teams', how many received every one of theirs, and how many
// serve disconnected, for falling behind (the first and the last when, in
// seconds from start) or otherwise (the first such error in otherErr).
func (cs *consoles) figures(f *pipeFigures, start time.Time) (otherErr error) {
	f.consoles = len(cs.all)
	for _, c := range cs.all {
		n := c.samples.Load()
		f.samples += n
		f.expected += c.want
		if n >= c.want {
			f.complete++
		}
		switch gone, evicted := c.gone(); {
		case evicted:
			at := c.ended.Sub(start).Seconds()
			if f.evicted == 0 || at < f.firstEvicted {
				f.firstEvicted = at
			}
			f.lastEvicted = max(f.lastEvicted, at)
			f.evicted++
		case gone:
			f.dropped++
			if otherErr == nil {
				otherErr = c.err
			}
		}
	}
	return otherErr
}

// close closes every console (a close frame, then the connection) and
// waits for their readers to end; calling it again does nothing.
func (cs *consoles) close() {
	cs.closed.Do(func() {
		var wg sync.WaitGroup
		for _, c := range cs.all {
			wg.Go(func() {
				c.closing.Store(true)
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
					time.Now().Add(time.Second))
				c.conn.Close()
				<-c.done
			})
		}
		wg.Wait()
	})
}
