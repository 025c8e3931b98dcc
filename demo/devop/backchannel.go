package devop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// backchannelEvent is the events member of a logout token (Back-Channel
// Logout 1.0 §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutTokenLifetime bounds the exp of a logout token (§2.4 "exp").
const logoutTokenLifetime = 2 * time.Minute

// LogoutToken is the claim set of a logout token (Back-Channel Logout 1.0
// §2.4). Exported for tests of relying parties that decode one.
type LogoutToken struct {
	Issuer   string         `json:"iss"`
	Audience string         `json:"aud"`
	IssuedAt int64          `json:"iat"`
	Expiry   int64          `json:"exp"`
	ID       string         `json:"jti"`
	Events   map[string]any `json:"events"`
	Subject  string         `json:"sub,omitempty"`
	// SessionID is the sid of the OP session being ended; absent when the
	// user has no session with that client.
	SessionID string `json:"sid,omitempty"`
}

// BackchannelLogout ends every OP session of username and tells every
// client that has a BackchannelLogoutURI (Back-Channel Logout 1.0 §2.5):
// for each session of the user with that client it POSTs
// application/x-www-form-urlencoded logout_token=JWT, signed ES256 with
// typ "logout+jwt", carrying iss, aud (the client id), iat, exp (iat + 2
// min), jti, events, sub and sid; a client the user has no session with
// gets one token with sub only. A 200 or 204 answer counts as success.
// Each POST is bounded by ctx and a 10 s timeout. Errors of all clients are
// joined; the sessions end whatever the clients answer. An unknown username
// is [ErrUnknownUser].
func (s *Server) BackchannelLogout(ctx context.Context, username string) error {
	st := s.st
	st.mu.Lock()
	if _, ok := st.users[username]; !ok {
		st.mu.Unlock()
		return ErrUnknownUser
	}
	sessions := st.userSessionsLocked(username)
	type target struct{ client, sid string }
	var sids []string
	bySID := map[string]map[string]bool{}
	for _, sess := range sessions {
		sids = append(sids, sess.sid)
		bySID[sess.sid] = sess.clients
		st.endSessionLocked(sess.sid)
	}
	st.mu.Unlock()

	var errs []error
	for _, c := range st.clientList() {
		if c.BackchannelLogoutURI == "" {
			continue
		}
		var targets []target
		for _, sid := range sids {
			if bySID[sid][c.ID] {
				targets = append(targets, target{c.ID, sid})
			}
		}
		if len(targets) == 0 {
			targets = append(targets, target{c.ID, ""})
		}
		for _, t := range targets {
			if err := s.postLogoutToken(ctx, c, username, t.sid); err != nil {
				errs = append(errs, fmt.Errorf("devop: back-channel logout to client %q: %w", c.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Server) logoutToken(clientID, subject, sid string) (string, error) {
	now := s.st.now()
	return s.sign(LogoutToken{
		Issuer:    s.issuer,
		Audience:  clientID,
		IssuedAt:  now.Unix(),
		Expiry:    now.Add(logoutTokenLifetime).Unix(),
		ID:        randomID(),
		Events:    map[string]any{backchannelEvent: map[string]any{}},
		Subject:   subject,
		SessionID: sid,
	}, "logout+jwt")
}

func (s *Server) postLogoutToken(ctx context.Context, c Client, subject, sid string) error {
	if err := checkClient(c); err != nil {
		return err
	}
	tok, err := s.logoutToken(c.ID, subject, sid)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI, strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
