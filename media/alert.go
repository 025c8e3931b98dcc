package media

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/webhook"
)

// AlertEvent is the body of a "visit.waiting" webhook delivery
// (visits.alert_webhooks): which clinic's visit, when, and how many wait
// now. Nothing about the person: no name, no title.
type AlertEvent struct {
	Type    string    `json:"type"`
	Clinic  string    `json:"clinic"`
	VisitID string    `json:"visit_id"`
	Time    time.Time `json:"time"`
	Waiting int       `json:"waiting"`
}

// alertEventType is AlertEvent.Type and the X-Telegate-Event header.
const alertEventType = "visit.waiting"

// clinicHook is one visits.alert_webhooks entry.
type clinicHook struct {
	clinic string
	groups []string
	send   *webhook.Sender
}

// alerts are the clinics' arrival webhooks, in configuration order.
type alerts struct{ hooks []clinicHook }

// AlertQueue is the outbox queue of clinic's arrival webhook
// (webhook.Store.Queue).
func AlertQueue(clinic string) string { return "visit-alert:" + clinic }

// newAlerts builds the senders of cfg with o's schedule, bounds and
// registry, each on its clinic's queue of store (nil: in memory), their
// ends told to ended.
func newAlerts(cfg []config.VisitAlertWebhook, o webhook.Options, store webhook.Store, ended func(webhook.Delivery, string, string, int)) (*alerts, error) {
	a := &alerts{}
	for i, c := range cfg {
		o := o
		if store != nil {
			o.Outbox = store.Queue(AlertQueue(c.Clinic))
		}
		o.OnEnd = ended
		s, err := webhook.FromConfig(c.Webhook, o)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("visits.alert_webhooks[%d].webhook.%w", i, err)
		}
		if s == nil {
			a.close()
			return nil, fmt.Errorf("visits.alert_webhooks[%d].webhook.url: is required", i)
		}
		a.hooks = append(a.hooks, clinicHook{clinic: c.Clinic, groups: slices.Clone(c.Groups), send: s})
	}
	return a, nil
}

// clinicOf is the clinic of a visit created by a clinician in groups:
// the first entry listing one of them, else the first without groups,
// else "" (no webhook).
func (a *alerts) clinicOf(groups []string) string {
	for _, h := range a.hooks {
		if len(h.groups) == 0 || slices.ContainsFunc(h.groups, func(g string) bool { return slices.Contains(groups, g) }) {
			return h.clinic
		}
	}
	return ""
}

func (a *alerts) sender(clinic string) *webhook.Sender {
	for _, h := range a.hooks {
		if h.clinic == clinic && clinic != "" {
			return h.send
		}
	}
	return nil
}

// start starts the senders (the deliveries pending from before a
// restart included).
func (a *alerts) start() {
	for _, h := range a.hooks {
		h.send.Start()
	}
}

// close stops the senders and waits for attempts under way; what is
// pending stays in the outbox.
func (a *alerts) close() {
	for _, h := range a.hooks {
		h.send.Close()
	}
}

// alertArrival tells v's clinic that someone entered its waiting room,
// now waiting people wait; the delivery's end is audited by alertEnded.
func (s *Service) alertArrival(v *visit, waiting int) {
	send := s.alerts.sender(v.Clinic)
	if send == nil {
		return
	}
	now := s.now().UTC()
	body, err := json.Marshal(AlertEvent{Type: alertEventType, Clinic: v.Clinic, VisitID: v.ID, Time: now, Waiting: waiting})
	if err != nil {
		return
	}
	send.Send(alertEventType, v.ID+"."+strconv.FormatInt(now.UnixMilli(), 10), body)
}

// alertEnded audits the end of an arrival delivery ("visit.alert": allow
// "delivered", or deny with the failure and the attempts made), from the
// visit and clinic in its body: the node ending it may not be the one
// that sent it, nor the same process.
func (s *Service) alertEnded(d webhook.Delivery, outcome, cause string, attempts int) {
	var ev AlertEvent
	_ = json.Unmarshal(d.Body, &ev)
	e := audit.Event{Type: "visit.alert", Decision: "deny", Reason: outcome,
		Attrs: map[string]string{"visit_id": ev.VisitID, "clinic": ev.Clinic, "attempts": strconv.Itoa(attempts)}}
	if outcome == webhook.Delivered {
		e.Decision = "allow"
	} else {
		s.log.Warn("visit arrival webhook delivery failed", "visit_id", ev.VisitID, "clinic", ev.Clinic, "outcome", outcome, "cause", cause, "attempts", attempts)
	}
	s.record(context.Background(), e)
}
