package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/patientpulse/patientpulse/registry"
)

// The broker's accounts that patientpulse manages, each a client with one
// role of the dynamic security plugin.

// PipelineRole is the broker role of the pipeline's own account: it may
// take every device's data and answer on every device's errors topic.
const PipelineRole = "patientpulse-pipeline"

// DeviceRole is the broker role of a device's account: it may publish to
// its own data topic and hear its own errors and summary topics, nothing
// else.
func DeviceRole(device string) string { return "device-" + device }

// acl is one access rule of a role.
type acl struct {
	Type  string `json:"acltype"`
	Topic string `json:"topic"`
	Allow bool   `json:"allow"`
}

// clientRoles returns the roles of the broker's client username, and
// whether it exists.
func (b *BrokerAccounts) clientRoles(ctx context.Context, username string) ([]string, bool, error) {
	ans, err := b.run(ctx, dynsecCommand{"command": "getClient", "username": username})
	if err != nil {
		return nil, false, err
	}
	if ans[0].Error == dynsecClientNotFound {
		return nil, false, nil
	}
	if err := answerError(ans[0]); err != nil {
		return nil, false, err
	}
	var data struct {
		Client struct {
			Roles []struct {
				Name string `json:"rolename"`
			} `json:"roles"`
		} `json:"client"`
	}
	if err := json.Unmarshal(ans[0].Data, &data); err != nil {
		return nil, false, fmt.Errorf("broker getClient: unreadable answer: %w", err)
	}
	var roles []string
	for _, r := range data.Client.Roles {
		roles = append(roles, r.Name)
	}
	return roles, true, nil
}

// ensureAccount makes the client username, with password, hold exactly
// the role, which it creates or sets to acls. A clientID binds the account
// to that MQTT client id: no other may connect with it. An existing client must
// already hold the role (else ErrForeignAccount); its password is set
// only when resetPassword says so, since setting it disconnects the
// client's connections.
func (b *BrokerAccounts) ensureAccount(ctx context.Context, username, clientID, password, role string, acls []acl,
	resetPassword func() (bool, error)) error {
	roles, exists, err := b.clientRoles(ctx, username)
	if err != nil {
		return err
	}
	if exists && !slices.Contains(roles, role) {
		return fmt.Errorf("%s: %w (it lacks the role %s)", username, ErrForeignAccount, role)
	}
	cmds := []dynsecCommand{{"command": "createRole", "rolename": role, "acls": acls}}
	clientRoles := []map[string]any{{"rolename": role}}
	client := dynsecCommand{"username": username, "password": password, "roles": clientRoles}
	if clientID != "" {
		client["clientid"] = clientID
	}
	if !exists {
		client["command"] = "createClient"
		cmds = append(cmds, client)
	} else if reset, err := resetPassword(); err != nil {
		return err
	} else if reset {
		client["command"] = "modifyClient"
		cmds = append(cmds, client, dynsecCommand{"command": "enableClient", "username": username})
	}
	ans, err := b.run(ctx, cmds...)
	if err != nil {
		return err
	}
	for _, a := range ans[1:] {
		if err := answerError(a); err != nil {
			return err
		}
	}
	if ans[0].Error != dynsecRoleExists {
		return answerError(ans[0])
	}
	// Set the existing role's rules, in case an older version made them.
	// (Unlike a new password, this disconnects no one.)
	ans, err = b.run(ctx, dynsecCommand{"command": "modifyRole", "rolename": role, "acls": acls})
	if err != nil {
		return err
	}
	return answerError(ans[0])
}

// internalTopics are the pipeline's own topics (the partition feed), which
// carry any patient's points.
const internalTopics = "pp/v1/internal/#"

// deviceACLs confine a device to its own topics. The pipeline's internal
// topics are refused outright as well, beyond the plugin's default
// (which a broker's operator may change): a device publishing there
// would inject points for any patient, and one subscribing would read
// every patient's.
func deviceACLs(device string) []acl {
	return []acl{
		{Type: "publishClientSend", Topic: DataTopic(device), Allow: true},
		{Type: "subscribePattern", Topic: ErrorTopic(device), Allow: true},
		{Type: "publishClientReceive", Topic: ErrorTopic(device), Allow: true},
		{Type: "subscribePattern", Topic: SummaryTopic(device), Allow: true},
		{Type: "publishClientReceive", Topic: SummaryTopic(device), Allow: true},
		{Type: "publishClientSend", Topic: internalTopics, Allow: false},
		{Type: "subscribePattern", Topic: internalTopics, Allow: false},
		{Type: "publishClientReceive", Topic: internalTopics, Allow: false},
	}
}

// pipelineACLs let the pipeline take every device's data, through a
// shared subscription (Mosquitto checks its filter with the
// $share/group/ prefix) or a plain one, answer on every device's errors
// topic, publish every device's weekly summary, and publish and hear its
// internal topics (the partition feed between instances).
func pipelineACLs() []acl {
	return []acl{
		{Type: "subscribePattern", Topic: DataTopic("+"), Allow: true},
		{Type: "subscribePattern", Topic: "$share/+/" + DataTopic("+"), Allow: true},
		{Type: "publishClientReceive", Topic: DataTopic("+"), Allow: true},
		{Type: "publishClientSend", Topic: ErrorTopic("+"), Allow: true},
		{Type: "publishClientSend", Topic: SummaryTopic("+"), Allow: true},
		{Type: "subscribePattern", Topic: internalTopics, Allow: true},
		{Type: "publishClientSend", Topic: internalTopics, Allow: true},
		{Type: "publishClientReceive", Topic: internalTopics, Allow: true},
	}
}

// AddDevice gives the device its broker account: username = client id =
// device id, password = token, and the role DeviceRole(device) that lets it publish
// only to its data topic and subscribe only to its errors topic. When the
// device's account exists already, its password and role are set again
// (which disconnects its connections). A client of that name that
// patientpulse did not make is left alone: the error wraps
// ErrForeignAccount.
func (b *BrokerAccounts) AddDevice(ctx context.Context, device, token string) error {
	if !registry.ValidID(device) {
		return fmt.Errorf("broker account of device %q: %w", device, registry.ErrInvalidID)
	}
	if token == "" {
		return fmt.Errorf("broker account of device %s: empty token", device)
	}
	always := func() (bool, error) { return true, nil }
	// Bound to its own client id, a device cannot take over another
	// client's session (the pipeline's, with its subscription to every
	// device's data).
	if err := b.ensureAccount(ctx, device, device, token, DeviceRole(device), deviceACLs(device), always); err != nil {
		return fmt.Errorf("broker account of device %s: %w", device, err)
	}
	return nil
}

// RefreshDeviceRoles gives each device's role the rules deviceACLs makes
// now, where it lacks one (a device enrolled by an older patientpulse,
// before its summary topic), and returns how many it changed. A device
// without a role is left alone. Roles are read first, so that a broker
// already current is not written to (the plugin rewrites its file on
// every change).
func (b *BrokerAccounts) RefreshDeviceRoles(ctx context.Context, devices []string) (int, error) {
	changed := 0
	for chunk := range slices.Chunk(devices, 100) {
		var gets []dynsecCommand
		for _, d := range chunk {
			gets = append(gets, dynsecCommand{"command": "getRole", "rolename": DeviceRole(d)})
		}
		ans, err := b.run(ctx, gets...)
		if err != nil {
			return changed, fmt.Errorf("refresh device roles: %w", err)
		}
		var mods []dynsecCommand
		for i, a := range ans {
			if a.Error == dynsecRoleNotFound {
				continue
			}
			if err := answerError(a); err != nil {
				return changed, fmt.Errorf("refresh device roles: %w", err)
			}
			var data struct {
				Role struct {
					ACLs []acl `json:"acls"`
				} `json:"role"`
			}
			if err := json.Unmarshal(a.Data, &data); err != nil {
				return changed, fmt.Errorf("refresh device roles: broker getRole: unreadable answer: %w", err)
			}
			want := deviceACLs(chunk[i])
			for _, w := range want {
				if !slices.Contains(data.Role.ACLs, w) {
					mods = append(mods, dynsecCommand{"command": "modifyRole", "rolename": DeviceRole(chunk[i]), "acls": want})
					break
				}
			}
		}
		if len(mods) == 0 {
			continue
		}
		ans, err = b.run(ctx, mods...)
		if err != nil {
			return changed, fmt.Errorf("refresh device roles: %w", err)
		}
		for _, a := range ans {
			if err := answerError(a); err != nil {
				return changed, fmt.Errorf("refresh device roles: %w", err)
			}
			changed++
		}
	}
	return changed, nil
}

// RemoveDevice deletes the device's broker account and role; the broker
// disconnects the device's connections at once. A device without an
// account is no error. A client of that name that patientpulse did not
// make is left alone: the error wraps ErrForeignAccount.
func (b *BrokerAccounts) RemoveDevice(ctx context.Context, device string) error {
	if err := b.removeDevice(ctx, device); err != nil {
		return fmt.Errorf("remove broker account of device %s: %w", device, err)
	}
	return nil
}

func (b *BrokerAccounts) removeDevice(ctx context.Context, device string) error {
	role := DeviceRole(device)
	roles, exists, err := b.clientRoles(ctx, device)
	if err != nil {
		return err
	}
	if exists && !slices.Contains(roles, role) {
		return fmt.Errorf("%w (it lacks the role %s)", ErrForeignAccount, role)
	}
	var cmds []dynsecCommand
	if exists {
		// Mosquitto 2.0 disconnects the client's connections on deleteClient.
		cmds = append(cmds, dynsecCommand{"command": "deleteClient", "username": device})
	}
	cmds = append(cmds, dynsecCommand{"command": "deleteRole", "rolename": role})
	ans, err := b.run(ctx, cmds...)
	if err != nil {
		return err
	}
	for _, a := range ans {
		if a.Error != dynsecClientNotFound && a.Error != dynsecRoleNotFound {
			if err := answerError(a); err != nil {
				return err
			}
		}
	}
	return nil
}

// EnsurePipelineAccount makes sure the pipeline's own broker account
// exists with the role PipelineRole. A new account gets password; an
// existing one keeps its password while that still opens a connection,
// so that starting one instance does not disconnect the others, and
// gets password otherwise. An existing client without PipelineRole (the
// admin, a device) is left alone: the error wraps ErrForeignAccount.
func (b *BrokerAccounts) EnsurePipelineAccount(ctx context.Context, username, password string) error {
	if username == "" || password == "" {
		return errors.New("pipeline broker account: username and password are required")
	}
	stale := func() (bool, error) {
		err := b.tryLogin(ctx, username, password)
		if errors.Is(err, ErrBrokerRefused) {
			return true, nil
		}
		return false, err
	}
	if err := b.ensureAccount(ctx, username, "", password, PipelineRole, pipelineACLs(), stale); err != nil {
		return fmt.Errorf("pipeline broker account %s: %w", username, err)
	}
	return nil
}

// tryLogin connects once with the account and disconnects.
func (b *BrokerAccounts) tryLogin(ctx context.Context, username, password string) error {
	opts, err := accountOptions(b.cfg, username, password, "patientpulse-check-"+b.prefix)
	if err != nil {
		return err
	}
	c, err := dialBroker(ctx, opts, b.cfg.Timeout)
	if err != nil {
		return err
	}
	c.Disconnect(0)
	return nil
}
