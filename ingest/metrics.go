package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Transport label values.
const (
	TransportMQTT = "mqtt"
	TransportHTTP = "http"
)

// Metrics are the ingest stage's Prometheus metrics. Labels carry
// transports, sample types and reasons only: never a patient or device.
type Metrics struct {
	Messages         *prometheus.CounterVec // transport
	MessagesRejected *prometheus.CounterVec // transport, reason: whole messages refused
	Deferred         *prometheus.CounterVec // transport, reason: told to retry later (busy, unavailable)
	SamplesAccepted  *prometheus.CounterVec // transport, type
	SamplesRejected  *prometheus.CounterVec // transport, reason
	InFlight         *prometheus.GaugeVec   // transport
	SeqGaps          prometheus.Counter     // messages whose seq skipped ahead
	SeqRepeats       prometheus.Counter     // messages whose seq was not new (redeliveries, resets)
	PointsWritten    prometheus.Counter     // points durably stored
	WriteErrors      *prometheus.CounterVec // kind: retryable|rejected
	WriteDuration    prometheus.Histogram   // seconds per sink write
	BatchPoints      prometheus.Histogram   // points per sink write
	PendingPoints    prometheus.Gauge       // accepted by the writer, not yet stored
	StorageUp        prometheus.Gauge       // 1 while the last write or ping succeeded
	BrokerConnected  prometheus.Gauge       // 1 while connected to the MQTT broker
	BrokerConnLost   prometheus.Counter     // connections to the broker lost
	ErrorAnswers     *prometheus.CounterVec // transport: error documents sent back
	AnswerFailures   prometheus.Counter     // error documents the broker did not take
}

// NewMetrics creates the metrics and registers them with reg (which may be
// nil, for tests that do not look at them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ingest_messages_total",
			Help: "Messages received, by transport.",
		}, []string{"transport"}),
		MessagesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ingest_messages_rejected_total",
			Help: "Messages refused as a whole (unknown device, malformed envelope, too large...), by transport and reason.",
		}, []string{"transport", "reason"}),
		Deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ingest_deferred_total",
			Help: "Messages not taken now and to be sent again (HTTPS 429/503), by transport and reason: busy or unavailable.",
		}, []string{"transport", "reason"}),
		SamplesAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ingest_samples_accepted_total",
			Help: "Samples stored, by transport and sample type.",
		}, []string{"transport", "type"}),
		SamplesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ingest_samples_rejected_total",
			Help: "Samples rejected and answered, by transport and reason.",
		}, []string{"transport", "reason"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patientpulse_ingest_messages_in_flight",
			Help: "Messages received and not yet acknowledged or answered, by transport.",
		}, []string{"transport"}),
		SeqGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_ingest_seq_gaps_total",
			Help: "Messages whose seq skipped ahead of the device's last one (messages missing upstream).",
		}),
		SeqRepeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_ingest_seq_repeats_total",
			Help: "Messages whose seq was not above the device's last one (redeliveries or a device reset); stored again harmlessly.",
		}),
		PointsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_writer_points_written_total",
			Help: "Points durably written to InfluxDB.",
		}),
		WriteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_writer_write_errors_total",
			Help: "Failed writes to InfluxDB, by kind: retryable (retried) or rejected (not retried).",
		}, []string{"kind"}),
		WriteDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "patientpulse_writer_write_duration_seconds",
			Help:    "Time of one write to InfluxDB.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		BatchPoints: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "patientpulse_writer_batch_points",
			Help:    "Points per write to InfluxDB.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		PendingPoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patientpulse_writer_pending_points",
			Help: "Points accepted by the writer and not yet stored.",
		}),
		StorageUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patientpulse_writer_storage_up",
			Help: "1 while InfluxDB takes writes, 0 while writes fail.",
		}),
		BrokerConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patientpulse_mqtt_connected",
			Help: "1 while connected to the MQTT broker and subscribed (with several instances: every MQTT session this instance holds).",
		}),
		BrokerConnLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_mqtt_connection_lost_total",
			Help: "Connections to the MQTT broker lost.",
		}),
		ErrorAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ingest_error_answers_total",
			Help: "Error documents sent back to devices, by transport.",
		}, []string{"transport"}),
		AnswerFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_mqtt_answer_failures_total",
			Help: "Attempts to send an error document that the broker did not take (they are retried; the message stays unacknowledged meanwhile).",
		}),
	}
	m.StorageUp.Set(1)
	if reg != nil {
		reg.MustRegister(m.Messages, m.MessagesRejected, m.Deferred, m.SamplesAccepted, m.SamplesRejected,
			m.InFlight, m.SeqGaps, m.SeqRepeats, m.PointsWritten, m.WriteErrors, m.WriteDuration,
			m.BatchPoints, m.PendingPoints, m.StorageUp, m.BrokerConnected, m.BrokerConnLost,
			m.ErrorAnswers, m.AnswerFailures)
	}
	return m
}
