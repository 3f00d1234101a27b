package ingest

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
)

// Retained is a message the pipeline leaves on the broker for a device
// to read: its weekly summary.
type Retained struct {
	Topic   string
	Payload []byte
}

// publishWait is how long the broker has to acknowledge each retained
// message.
const publishWait = 10 * time.Second

// PublishRetained connects to the broker with the pipeline's account
// (cfg's URL, username, password and CA file) under a client id of its
// own, publishes each message retained at QoS 1, waiting for the
// broker's acknowledgement of each, and disconnects. It stops at the
// first message the broker does not acknowledge; sent is how many it did.
func PublishRetained(ctx context.Context, cfg MQTTConfig, msgs []Retained) (sent int, err error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	clientID := fmt.Sprintf("%.40s-publish-%s", cfg.ClientID, rand.Text()[:8])
	opts, err := accountOptions(BrokerAdminConfig{URL: cfg.URL, CAFile: cfg.CAFile, Timeout: publishWait}, cfg.Username, cfg.Password, clientID)
	if err != nil {
		return 0, err
	}
	opts.SetCustomOpenConnectionFn(openBrokerConn)
	client, err := dialBroker(ctx, opts, publishWait)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	defer client.Disconnect(250)
	for _, m := range msgs {
		tok := client.Publish(m.Topic, 1, true, m.Payload)
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-time.After(publishWait):
			return sent, fmt.Errorf("publish: %w: no acknowledgement within %s", ErrBrokerUnreachable, publishWait)
		}
		if err := tok.Error(); err != nil {
			return sent, fmt.Errorf("publish: %w: %v", ErrBrokerUnreachable, err)
		}
		sent++
	}
	return sent, nil
}
