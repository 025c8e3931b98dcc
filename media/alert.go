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

// newAlerts builds the senders of cfg with o's schedule and registry.
func newAlerts(cfg []config.VisitAlertWebhook, o webhook.Options) (*alerts, error) {
	a := &alerts{}
	for i, c := range cfg {
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

// close stops the senders' retries and waits for attempts under way.
func (a *alerts) close() {
	for _, h := range a.hooks {
		h.send.Close()
	}
}

// alertArrival tells v's clinic that someone entered its waiting room,
// now waiting people wait; the delivery's end is audited
// ("visit.alert": allow "delivered", or deny with the failure and the
// attempts made).
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
	vid, clinic := v.ID, v.Clinic
	send.Send(alertEventType, vid+"."+strconv.FormatInt(now.UnixMilli(), 10), body, func(outcome, cause string, attempts int) {
		e := audit.Event{Type: "visit.alert", Decision: "deny", Reason: outcome,
			Attrs: map[string]string{"visit_id": vid, "clinic": clinic, "attempts": strconv.Itoa(attempts)}}
		if outcome == webhook.Delivered {
			e.Decision = "allow"
		} else {
			s.log.Warn("visit arrival webhook delivery failed", "visit_id", vid, "clinic", clinic, "outcome", outcome, "cause", cause, "attempts", attempts)
		}
		s.record(context.Background(), e)
	})
}
