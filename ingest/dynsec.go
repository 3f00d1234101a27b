package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The control API of Mosquitto's dynamic security plugin: commands are
// published to dynsecTopic, and the plugin answers every command on
// dynsecResponseTopic, to every client subscribed there.
const (
	dynsecTopic         = "$CONTROL/dynamic-security/v1"
	dynsecResponseTopic = dynsecTopic + "/response"
)

// The plugin's own error texts that BrokerAccounts acts on (Mosquitto 2.0).
const (
	dynsecClientNotFound = "Client not found"
	dynsecRoleExists     = "Role already exists"
	dynsecRoleNotFound   = "Role not found"
)

// Errors of BrokerAccounts.
var (
	// ErrBrokerUnreachable: no connection to the broker could be made, or
	// it did not answer in time; trying again later may succeed.
	ErrBrokerUnreachable = errors.New("broker unreachable")
	// ErrBrokerRefused: the broker refused the username and password.
	ErrBrokerRefused = errors.New("broker refused the credentials")
	// ErrForeignAccount: the broker has a client of that name that is not
	// the device's (or the pipeline's) account made by patientpulse; it is
	// left alone.
	ErrForeignAccount = errors.New("broker client is not patientpulse's")
)

// BrokerError is a command that the dynamic security plugin refused, with
// the plugin's reason. It never carries a password.
type BrokerError struct {
	Command string // "createClient", say
	Message string // the plugin's "error", say "Role not found"
}

func (e *BrokerError) Error() string {
	return fmt.Sprintf("broker refused %s: %s", e.Command, e.Message)
}

// BrokerAdminConfig is how patientpulse reaches the dynamic security
// plugin: the broker's URL and CA (the collector's), and an account
// allowed to publish to $CONTROL/dynamic-security/v1 and subscribe to its
// response topic (the admin that `mosquitto_ctrl dynsec init` makes).
type BrokerAdminConfig struct {
	URL      string
	Username string
	Password string
	CAFile   string
	Timeout  time.Duration // bounds the connection and each command; 0: 10s
}

// Validate reports every problem of the admin account at once. The URL
// and CA file are the collector's, which MQTTConfig.Validate checks.
func (c BrokerAdminConfig) Validate() error {
	var errs []error
	if c.Username == "" {
		errs = append(errs, errors.New("broker-admin-username is required with broker-accounts"))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("broker-admin-password is required with broker-accounts"))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("the broker admin timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// BrokerAccounts manages the broker's accounts through the dynamic
// security plugin: one per device (username = device id, password = its
// token) and the pipeline's own. Its methods are safe for concurrent use.
// No error and no log of it carries a token or a password.
type BrokerAccounts struct {
	cfg    BrokerAdminConfig
	client mqtt.Client
	prefix string        // of this instance's correlation data
	seq    atomic.Uint64 // numbers the commands
	lost   chan struct{} // closed when the connection is lost

	mu      sync.Mutex
	waiting map[string]chan dynsecAnswer // by correlation data; guarded by mu
}

// dynsecAnswer is the plugin's answer to one command.
type dynsecAnswer struct {
	Command         string          `json:"command"`
	Error           string          `json:"error"`
	CorrelationData string          `json:"correlationData"`
	Data            json.RawMessage `json:"data"`
}

// dynsecCommand is one command of the control API.
type dynsecCommand map[string]any

// DialBrokerAccounts connects to the broker with the admin account and
// listens for the plugin's answers. Its error wraps ErrBrokerUnreachable
// when the broker cannot be reached and ErrBrokerRefused when it refuses
// the account.
func DialBrokerAccounts(ctx context.Context, cfg BrokerAdminConfig) (*BrokerAccounts, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	var id [8]byte
	rand.Read(id[:])
	b := &BrokerAccounts{
		cfg:     cfg,
		prefix:  hex.EncodeToString(id[:]),
		lost:    make(chan struct{}),
		waiting: map[string]chan dynsecAnswer{},
	}
	opts, err := accountOptions(cfg, cfg.Username, cfg.Password, "patientpulse-admin-"+b.prefix)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	opts.SetConnectionLostHandler(func(mqtt.Client, error) { once.Do(func() { close(b.lost) }) })
	if b.client, err = dialBroker(ctx, opts, cfg.Timeout); err != nil {
		return nil, fmt.Errorf("broker admin account: %w", err)
	}
	tok := b.client.Subscribe(dynsecResponseTopic, 1, b.receive).(*mqtt.SubscribeToken)
	err = fmt.Errorf("%w: no answer to SUBSCRIBE within %v", ErrBrokerUnreachable, cfg.Timeout)
	if tok.WaitTimeout(cfg.Timeout) {
		err = tok.Error()
		if code := subackCode(tok); err == nil && code > 2 {
			err = fmt.Errorf("broker refused the subscription to %s: is %s the dynamic security plugin's admin?",
				dynsecResponseTopic, cfg.Username)
		}
	}
	if err != nil {
		b.client.Disconnect(0)
		return nil, fmt.Errorf("broker admin account: %w", err)
	}
	return b, nil
}

// accountOptions are the options of a short-lived, clean-session
// connection with the given account.
func accountOptions(cfg BrokerAdminConfig, username, password, clientID string) (*mqtt.ClientOptions, error) {
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(clientID).
		SetUsername(username).
		SetPassword(password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(cfg.Timeout)
	if cfg.CAFile != "" {
		tlsCfg, err := brokerTLS(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tlsCfg)
	}
	return opts, nil
}

// dialBroker connects, waiting at most timeout. A connection that comes up
// after ctx ended is closed again.
func dialBroker(ctx context.Context, opts *mqtt.ClientOptions, timeout time.Duration) (mqtt.Client, error) {
	client := mqtt.NewClient(opts)
	tok := client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go func() { <-tok.Done(); client.Disconnect(0) }()
		return nil, ctx.Err()
	case <-time.After(timeout + time.Second): // paho's own connect timeout should come first
		go func() { <-tok.Done(); client.Disconnect(0) }()
		return nil, fmt.Errorf("%w: no CONNACK within %v", ErrBrokerUnreachable, timeout)
	}
	err := tok.Error()
	switch {
	case err == nil:
		return client, nil
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return nil, fmt.Errorf("%w (%v)", ErrBrokerRefused, err)
	default:
		return nil, fmt.Errorf("%w: %v", ErrBrokerUnreachable, err)
	}
}

// Close disconnects. The BrokerAccounts cannot be used after.
func (b *BrokerAccounts) Close() { b.client.Disconnect(250) }

// receive hands the plugin's answers to the commands waiting for them.
// Answers to other admin clients' commands are ignored.
func (b *BrokerAccounts) receive(_ mqtt.Client, msg mqtt.Message) {
	var doc struct {
		Responses []dynsecAnswer `json:"responses"`
	}
	if json.Unmarshal(msg.Payload(), &doc) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range doc.Responses {
		if ch, ok := b.waiting[a.CorrelationData]; ok {
			ch <- a // buffered for one answer
			delete(b.waiting, a.CorrelationData)
		}
	}
}

// run sends the commands in one message, which the plugin carries out in
// order, and returns their answers in the same order. Its error is about
// the exchange (no connection, no answer in time); each answer's Error is
// the plugin's verdict on its command.
func (b *BrokerAccounts) run(ctx context.Context, cmds ...dynsecCommand) ([]dynsecAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	chans := make([]chan dynsecAnswer, len(cmds))
	b.mu.Lock()
	for i, cmd := range cmds {
		id := b.prefix + "-" + strconv.FormatUint(b.seq.Add(1), 10)
		cmd["correlationData"] = id
		chans[i] = make(chan dynsecAnswer, 1)
		b.waiting[id] = chans[i]
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		for _, cmd := range cmds {
			delete(b.waiting, cmd["correlationData"].(string))
		}
		b.mu.Unlock()
	}()
	body, err := json.Marshal(map[string]any{"commands": cmds})
	if err != nil {
		return nil, fmt.Errorf("broker command: %w", err)
	}
	tok := b.client.Publish(dynsecTopic, 1, false, body)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, fmt.Errorf("%w: publish %s: %v", ErrBrokerUnreachable, cmds[0]["command"], err)
		}
	case <-b.lost:
		return nil, fmt.Errorf("%w: connection lost", ErrBrokerUnreachable)
	case <-ctx.Done():
		return nil, b.waitError(ctx, cmds[0])
	}
	answers := make([]dynsecAnswer, len(cmds))
	for i, ch := range chans {
		select {
		case answers[i] = <-ch:
		case <-b.lost:
			return nil, fmt.Errorf("%w: connection lost", ErrBrokerUnreachable)
		case <-ctx.Done():
			return nil, b.waitError(ctx, cmds[i])
		}
	}
	return answers, nil
}

// waitError explains a command left unanswered.
func (b *BrokerAccounts) waitError(ctx context.Context, cmd dynsecCommand) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer to %s within %v: is the dynamic security plugin loaded (plugin in mosquitto.conf), and may %s use it?",
			ErrBrokerUnreachable, cmd["command"], b.cfg.Timeout, b.cfg.Username)
	}
	return ctx.Err()
}

// answerError is the plugin's refusal of a command as an error, or nil.
func answerError(a dynsecAnswer) error {
	if a.Error == "" {
		return nil
	}
	return &BrokerError{Command: a.Command, Message: a.Error}
}
