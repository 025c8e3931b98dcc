package policies

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// BreakGlassUsesPath is the review page on the public listener: GET lists
// the uses (active and past, newest first, MaxListedUses of them); POST
// BreakGlassUsesPath/<grant id> with form fields outcome (one of
// BreakGlassOutcomes) and note records a review. Only identities holding
// one of break_glass.reviewer_roles reach it; same-origin requests only.
const BreakGlassUsesPath = BreakGlassPath + "/uses"

// MaxListedUses caps the uses one list shows.
const MaxListedUses = 500

// Review channels (grants.Review.Via).
const (
	ReviewViaPage  = "page"
	ReviewViaAdmin = "admin"
)

// AdminReviewerIssuer is the issuer recorded for a review made on the
// admin listener (telegate breakglass review): the reviewer is the
// operator who names themselves there.
const AdminReviewerIssuer = "telegate:admin"

// IsReviewer reports whether id may review break-glass uses on the review
// page: it holds one of break_glass.reviewer_roles. Nobody does when none
// are configured.
func (b *BreakGlass) IsReviewer(id *scope.Identity) bool {
	if b == nil || id == nil || id.Issuer == "" || id.Subject == "" {
		return false
	}
	for _, r := range id.Roles {
		if slices.Contains(b.reviewers, r) {
			return true
		}
	}
	return false
}

// List returns up to limit uses, newest first (grants.Store.List).
func (b *BreakGlass) List(ctx context.Context, limit int) ([]*grants.Grant, error) {
	return b.store.List(ctx, limit)
}

// Review records reviewer's outcome for the use grantID, reached on
// channel via (ReviewViaPage: the reviewer must hold a reviewer role,
// IsReviewer; ReviewViaAdmin: the operator on the admin listener, whose
// reviewer identity is AdminReviewerIssuer and the name they give).
// Nobody reviews their own use. The review is audited
// ("break-glass.review": the reviewer as iss/sub, the grant id, route,
// outcome and the note's length — never the note, which may name a
// patient). Errors: ErrBreakGlassNotReviewer, ErrBreakGlassOutcome,
// ErrBreakGlassNote, ErrBreakGlassUnknown, ErrBreakGlassReviewed,
// ErrBreakGlassUnavailable.
func (b *BreakGlass) Review(ctx context.Context, grantID string, reviewer *scope.Identity, via, outcome, note string) (*grants.Grant, error) {
	if reviewer == nil || reviewer.Issuer == "" || reviewer.Subject == "" {
		return nil, ErrBreakGlassNotReviewer
	}
	shaped := grants.ValidID(grantID)
	if !shaped {
		grantID = "" // what the caller sent is not a grant id: not recorded
	}
	switch via {
	case ReviewViaPage:
		if !b.IsReviewer(reviewer) {
			b.record(ctx, audit.Event{Type: "break-glass.review", Issuer: reviewer.Issuer, Subject: reviewer.Subject,
				Decision: "deny", Reason: "not-reviewer", Attrs: map[string]string{"grant_id": grantID, "via": via}})
			return nil, ErrBreakGlassNotReviewer
		}
	case ReviewViaAdmin:
		if reviewer.Issuer != AdminReviewerIssuer {
			return nil, ErrBreakGlassNotReviewer
		}
	default:
		return nil, ErrBreakGlassNotReviewer
	}
	if !slices.Contains(BreakGlassOutcomes, outcome) {
		return nil, ErrBreakGlassOutcome
	}
	if !validNote(note) {
		return nil, ErrBreakGlassNote
	}
	if !shaped {
		return nil, ErrBreakGlassUnknown
	}
	g, err := b.store.Get(ctx, grantID)
	if err == nil && g.Issuer == reviewer.Issuer && g.Subject == reviewer.Subject {
		b.record(ctx, audit.Event{Type: "break-glass.review", RouteID: g.Route, Issuer: reviewer.Issuer, Subject: reviewer.Subject,
			Decision: "deny", Reason: "own-use", Attrs: map[string]string{"grant_id": grantID, "via": via}})
		return nil, ErrBreakGlassNotReviewer
	}
	if err == nil {
		now := b.now()
		g, err = b.store.Review(ctx, grantID, grants.Review{
			Outcome: outcome, Note: note, Issuer: reviewer.Issuer, Subject: reviewer.Subject, Via: via, Time: now,
		})
		if err == nil {
			b.record(ctx, audit.Event{Time: now, Type: "break-glass.review", RouteID: g.Route, Issuer: reviewer.Issuer, Subject: reviewer.Subject,
				Decision: "allow", Reason: outcome, Attrs: map[string]string{
					"grant_id": g.ID, "via": via, "note_bytes": strconv.Itoa(len(note)),
					"grant_iss": g.Issuer, "grant_sub": g.Subject,
				}})
			return g, nil
		}
	}
	switch {
	case errors.Is(err, grants.ErrNotFound):
		return nil, ErrBreakGlassUnknown
	case errors.Is(err, grants.ErrReviewed):
		return nil, ErrBreakGlassReviewed
	}
	b.log.Error("break-glass review not recorded: the grant store failed", "error", err)
	return nil, ErrBreakGlassUnavailable
}

// validNote: at most MaxReviewNoteBytes of UTF-8, no control characters
// but newline, carriage return and tab.
func validNote(s string) bool {
	if len(s) > MaxReviewNoteBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// reviewStatus maps Review's errors to an HTTP status and a sentence for
// the user.
func reviewStatus(err error) (int, string) {
	switch {
	case errors.Is(err, ErrBreakGlassNotReviewer):
		return http.StatusForbidden, "You may not review this use."
	case errors.Is(err, ErrBreakGlassOutcome):
		return http.StatusBadRequest, "Choose one of the listed outcomes."
	case errors.Is(err, ErrBreakGlassNote):
		return http.StatusBadRequest, "The note is too long or holds control characters."
	case errors.Is(err, ErrBreakGlassUnknown):
		return http.StatusNotFound, "There is no such use."
	case errors.Is(err, ErrBreakGlassReviewed):
		return http.StatusConflict, "This use has been reviewed already; the first review stands."
	}
	return http.StatusServiceUnavailable, "The review cannot be recorded right now."
}

// UseFacts are what every view of a grant shows (the review page, the
// admin listener, the webhook): what its audit record holds, nothing more
// about the person.
type UseFacts struct {
	GrantID string `json:"grant_id"`
	Route   string `json:"route"`
	// Issuer and Subject identify the person as the audit trail does.
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// Reason is one of BreakGlassReasons (never free text).
	Reason string `json:"reason"`
	// Granted and Expires bound the window (RFC 3339, UTC).
	Granted time.Time `json:"granted"`
	Expires time.Time `json:"expires"`
	Node    string    `json:"node,omitempty"`
}

func factsOf(g *grants.Grant) UseFacts {
	return UseFacts{GrantID: g.ID, Route: g.Route, Issuer: g.Issuer, Subject: g.Subject, Reason: g.Reason,
		Granted: g.Created.UTC(), Expires: g.Expires.UTC(), Node: g.Node}
}

// UseView is one use as the review page and the admin listener show it.
type UseView struct {
	UseFacts
	// State is "active" (the window is open) or "expired".
	State string `json:"state"`
	// Review is nil while the use is "unreviewed".
	Review *grants.Review `json:"review"`
}

// Reviewed is "unreviewed" or the review's outcome.
func (u UseView) Reviewed() string {
	if u.Review == nil {
		return "unreviewed"
	}
	return u.Review.Outcome
}

func (b *BreakGlass) views(ctx context.Context) ([]UseView, error) {
	gs, err := b.List(ctx, MaxListedUses)
	if err != nil {
		return nil, err
	}
	now := b.now()
	out := make([]UseView, len(gs))
	for i, g := range gs {
		out[i] = useView(g, now)
	}
	return out, nil
}

func useView(g *grants.Grant, now time.Time) UseView {
	u := UseView{UseFacts: factsOf(g), State: "expired", Review: g.Review}
	if g.Unexpired(now) {
		u.State = "active"
	}
	return u
}

var usesPage = page.ParseEnglish(`{{define "uses"}}
<p>Every break-glass use stays unreviewed until a reviewer records an outcome. Newest first.</p>
{{if not .Uses}}<p>No uses.</p>{{end}}
{{range .Uses}}<section id="use-{{.GrantID}}"><h2>{{.Route}} — {{.State}} — {{.Reviewed}}</h2>
<p>Use <code>{{.GrantID}}</code> by <code>{{.Subject}}</code> ({{.Issuer}}), reason {{.Reason}}, from {{.Granted.Format "2006-01-02 15:04:05Z"}} to {{.Expires.Format "2006-01-02 15:04:05Z"}}{{if .Node}} on {{.Node}}{{end}}.</p>
{{if .Review}}<p>Reviewed {{.Review.Outcome}} by <code>{{.Review.Subject}}</code> ({{.Review.Via}}) at {{.Review.Time.Format "2006-01-02 15:04:05Z"}}.{{if .Review.Note}} Note: {{.Review.Note}}{{end}}</p>
{{else}}<form method="post" action="{{$.Action}}/{{.GrantID}}"><label>Outcome <select name="outcome" required>{{range $.Outcomes}}<option value="{{.}}">{{.}}</option>{{end}}</select></label>
<label>Note <textarea name="note" maxlength="{{$.MaxNote}}"></textarea></label> <button type="submit">Record review</button></form>{{end}}
</section>{{end}}{{end}}`)

type usesData struct {
	Action   string
	Uses     []UseView
	Outcomes []string
	MaxNote  int
}

// ReviewHandler serves BreakGlassUsesPath on the public listener for
// identities that hold a reviewer role (IsReviewer): GET the page of uses,
// POST BreakGlassUsesPath/<id> a review (303 back to the page). Anyone
// else gets 401 (not signed in) or 403. A nil BreakGlass serves 404.
func (b *BreakGlass) ReviewHandler() http.Handler {
	csrf := http.NewCrossOriginProtection()
	return csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b == nil {
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
			return
		}
		s := scope.From(r.Context())
		if s == nil || s.Identity == nil {
			page.Error(w, r, http.StatusUnauthorized, "Sign-in is required.", "")
			return
		}
		if !b.IsReviewer(s.Identity) {
			if r.Method == http.MethodPost {
				// Audited as a refused review (Review records it).
				_, _ = b.Review(r.Context(), strings.TrimPrefix(r.URL.Path, BreakGlassUsesPath+"/"), s.Identity, ReviewViaPage, "", "")
			}
			page.Error(w, r, http.StatusForbidden, "Reviewing emergency access needs a reviewer role.", "")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case r.URL.Path == BreakGlassUsesPath && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			uses, err := b.views(r.Context())
			if err != nil {
				b.log.Error("break-glass uses not listed: the grant store failed", "error", err)
				page.Error(w, r, http.StatusServiceUnavailable, "The uses cannot be listed right now.", "")
				return
			}
			page.Render(w, r, page.Doc{Status: http.StatusOK, Title: "Emergency access uses"}, usesPage, "uses", usesData{
				Action: BreakGlassUsesPath,
				Uses:   uses, Outcomes: BreakGlassOutcomes, MaxNote: MaxReviewNoteBytes,
			})
		case strings.HasPrefix(r.URL.Path, BreakGlassUsesPath+"/") && r.Method == http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 4*MaxReviewNoteBytes)
			if err := r.ParseForm(); err != nil {
				page.Error(w, r, http.StatusBadRequest, "The form could not be read.", "")
				return
			}
			id := strings.TrimPrefix(r.URL.Path, BreakGlassUsesPath+"/")
			if _, err := b.Review(r.Context(), id, s.Identity, ReviewViaPage, r.PostForm.Get("outcome"), r.PostForm.Get("note")); err != nil {
				status, msg := reviewStatus(err)
				page.Error(w, r, status, msg, "")
				return
			}
			http.Redirect(w, r, BreakGlassUsesPath+"#use-"+id, http.StatusSeeOther)
		default:
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
		}
	}))
}

// AdminHandler serves the uses on the admin listener, for `telegate
// breakglass list|review`: GET /break-glass answers {"uses": [UseView…]}
// (JSON, newest first); POST /break-glass/<id>/review with form fields
// outcome, note and reviewer (the operator's name) records a review as
// ReviewViaAdmin and answers the UseView; errors answer
// {"error": "<sentence>"} with Review's status. The caller mounts it
// behind the admin listener's address and cross-origin checks.
func (b *BreakGlass) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /break-glass", func(w http.ResponseWriter, r *http.Request) {
		uses, err := b.views(r.Context())
		if err != nil {
			b.log.Error("break-glass uses not listed: the grant store failed", "error", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the uses cannot be listed right now"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"uses": uses})
	})
	mux.HandleFunc("POST /break-glass/{id}/review", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4*MaxReviewNoteBytes)
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the form could not be read"})
			return
		}
		name := r.PostForm.Get("reviewer")
		if !validReviewerName(name) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reviewer must name the operator (1–64 letters, digits, '.', '_', '-', '@')"})
			return
		}
		reviewer := &scope.Identity{Kind: "operator", Issuer: AdminReviewerIssuer, Subject: name}
		g, err := b.Review(r.Context(), r.PathValue("id"), reviewer, ReviewViaAdmin, r.PostForm.Get("outcome"), r.PostForm.Get("note"))
		if err != nil {
			status, msg := reviewStatus(err)
			writeJSON(w, status, map[string]string{"error": msg})
			return
		}
		writeJSON(w, http.StatusOK, useView(g, b.now()))
	})
	return mux
}

func validReviewerName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-@", c) >= 0) {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
