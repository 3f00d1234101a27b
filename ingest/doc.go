// Package ingest is the first stage of the patientpulse pipeline: it takes
// samples from patients' wearables and phone apps and stores them in
// InfluxDB.
//
// Two collectors receive the same JSON envelope (see DESIGN.md, "Envelope"):
// MQTT, through a shared subscription on pp/v1/devices/+/data, and HTTPS,
// on POST /v1/ingest. Both map the device to its patient, then hand the
// payload to [Decode], which validates every sample against physiological
// and instrument ranges and the accepted time window. Valid samples become
// [Point]s; invalid ones become [Problem]s, answered to the device as an
// [ErrorDoc] (on pp/v1/devices/{id}/errors or in an HTTP 400 body) and
// counted by reason, never logged with patient data. A message that cannot
// be used at all fails with an [*EnvelopeError].
//
// Points are rendered with [AppendLine] as InfluxDB line protocol and given
// to the batching [Writer], which stores them with blocking writes; a
// collector acknowledges its source (the MQTT message, the HTTP request)
// only once the writer reports its points stored. The analysis stage is fed
// from the same points in process.
//
// Where patientpulse manages the broker's credentials, [BrokerAccounts]
// keeps Mosquitto's dynamic security plugin in step with the registry:
// each enrolled device has an account (username = device id, password =
// its token) allowed only its own topics, and the pipeline has its own.
package ingest
