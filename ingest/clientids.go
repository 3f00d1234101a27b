package ingest

import "strings"

// ReservedClientID reports whether id is, or could become, one of the
// pipeline's own MQTT client ids under base (--mqtt-client-id): base
// itself, which a single instance connects as, and every id that starts
// with base+"-", among them the session slots (SessionClientID) and the
// partition feeds (FeedClientID, and its publisher's "-pub"). The whole
// namespace is reserved rather than the ids in use today, so that the
// rule is simple to state and stays true when the pipeline names another
// connection under base.
//
// A device connects with its id as client id, and the broker closes the
// older of two connections with one client id: a device whose id is
// reserved could disconnect a session of the pipeline, again and again,
// and take its queued messages. The comparison is case-sensitive, as
// Mosquitto's client ids are.
func ReservedClientID(base, id string) bool {
	return id == base || strings.HasPrefix(id, base+"-")
}
