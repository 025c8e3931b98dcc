package devop

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// randomID returns 128 random bits, base64url without padding.
func randomID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("devop: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// authRequest is one pending or completed authorization request
// (op.AuthRequest).
type authRequest struct {
	id           string
	expires      time.Time
	clientID     string
	redirectURI  string
	state        string
	nonce        string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge

	done     bool
	userID   string
	amr      []string
	authTime time.Time
	sid      string
	failures int
	code     string
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return slices.Clone(a.amr) }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return slices.Clone(a.scopes) }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.done }

func (a *authRequest) copy() *authRequest {
	c := *a
	c.scopes = slices.Clone(a.scopes)
	c.amr = slices.Clone(a.amr)
	return &c
}

type accessToken struct {
	id        string
	clientID  string
	subject   string
	sid       string
	refreshID string
	scopes    []string
	expires   time.Time
}

type refreshToken struct {
	token    string
	clientID string
	subject  string
	sid      string
	amr      []string
	scopes   []string
	authTime time.Time
	expires  time.Time
	accessID string
}

// refreshTokenRequest is op.RefreshTokenRequest over a copy of a stored
// refresh token.
type refreshTokenRequest struct{ t refreshToken }

func (r *refreshTokenRequest) GetAMR() []string                 { return slices.Clone(r.t.amr) }
func (r *refreshTokenRequest) GetAudience() []string            { return []string{r.t.clientID} }
func (r *refreshTokenRequest) GetAuthTime() time.Time           { return r.t.authTime }
func (r *refreshTokenRequest) GetClientID() string              { return r.t.clientID }
func (r *refreshTokenRequest) GetScopes() []string              { return slices.Clone(r.t.scopes) }
func (r *refreshTokenRequest) GetSubject() string               { return r.t.subject }
func (r *refreshTokenRequest) SetCurrentScopes(scopes []string) { r.t.scopes = scopes }

// session is one sign-in at the OP: the sid claim (Back-Channel Logout 1.0
// §2.1), shared by the tokens issued from it.
type session struct {
	sid     string
	userID  string
	clients map[string]bool
	expires time.Time
}

// storage is the in-memory op.Storage. Every table is an LRU capped at
// maxEntries, and every entry also carries an expiry.
type storage struct {
	now func() time.Time
	key *signingKey

	mu           sync.Mutex
	users        map[string]User
	clients      map[string]Client
	authRequests *simplelru.LRU[string, *authRequest]
	codes        *simplelru.LRU[string, string] // code → auth request id
	tokens       *simplelru.LRU[string, *accessToken]
	refresh      *simplelru.LRU[string, *refreshToken]
	sessions     *simplelru.LRU[string, *session]
}

var (
	_ op.Storage                        = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*storage)(nil)
)

func newLRU[V any]() *simplelru.LRU[string, V] {
	l, err := simplelru.NewLRU[string, V](maxEntries, nil)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return l
}

func newStorage(users []User, key *ecdsa.PrivateKey, kid string, now func() time.Time) (*storage, error) {
	st := &storage{
		now:          now,
		key:          &signingKey{id: kid, key: key},
		users:        make(map[string]User, len(users)),
		clients:      make(map[string]Client),
		authRequests: newLRU[*authRequest](),
		codes:        newLRU[string](),
		tokens:       newLRU[*accessToken](),
		refresh:      newLRU[*refreshToken](),
		sessions:     newLRU[*session](),
	}
	for _, u := range users {
		if u.Username == "" {
			return nil, errors.New("devop: user without username")
		}
		if _, dup := st.users[u.Username]; dup {
			return nil, fmt.Errorf("devop: duplicate user %q", u.Username)
		}
		st.users[u.Username] = u
	}
	return st, nil
}

func (s *storage) addClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	s.clients[c.ID] = c
}

func (s *storage) clientList() []Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Client, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Client) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// passwordMatches compares SHA-256 digests in constant time, so neither
// the content nor the length of the stored password leaks through timing.
func passwordMatches(stored, given string) bool {
	a := sha256.Sum256([]byte(stored))
	b := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// errLogin is the one answer to a failed sign-in: it does not say whether
// the user exists.
var errLogin = errors.New("wrong username or password")

// errRequestGone: the authorization request is unknown, expired, finished
// or locked after too many failures.
var errRequestGone = errors.New("sign-in request unknown or expired")

// checkLogin verifies the credentials for the pending auth request id and
// on success completes it with a new OP session.
func (s *storage) checkLogin(id, username, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	req, ok := s.authRequests.Get(id)
	if !ok || req.done || now.After(req.expires) {
		return errRequestGone
	}
	u, known := s.users[username]
	stored := u.Password
	if !known {
		// Same work for an unknown user as for a known one.
		stored = "\x00unknown-user\x00" + randomID()
	}
	if !passwordMatches(stored, password) || !known {
		req.failures++
		if req.failures >= maxLoginFailures {
			s.authRequests.Remove(id)
		}
		return errLogin
	}
	sid := randomID()
	s.sessions.Add(sid, &session{sid: sid, userID: u.Username, clients: map[string]bool{req.clientID: true}, expires: now.Add(sessionLifetime)})
	req.done = true
	req.userID = u.Username
	req.amr = slices.Clone(u.AMR)
	req.authTime = now
	req.sid = sid
	return nil
}

// pendingRequest reports whether id names a pending (not yet signed-in)
// auth request.
func (s *storage) pendingRequest(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.authRequests.Peek(id)
	return ok && !req.done && !s.now().After(req.expires)
}

// CreateAuthRequest stores a validated authorization request. It refuses a
// request without an S256 code_challenge (PKCE required, RFC 7636 §4.4.1,
// OAuth 2.0 Security BCP RFC 9700 §2.1.1) and prompt=none (the demo OP
// keeps no browser session, OIDC Core §3.1.2.6 login_required).
func (s *storage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if slices.Contains(r.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}
	if r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method S256 is required")
	}
	if r.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_type=code is supported")
	}
	req := &authRequest{
		id:           randomID(),
		expires:      s.now().Add(authRequestLifetime),
		clientID:     r.ClientID,
		redirectURI:  r.RedirectURI,
		state:        r.State,
		nonce:        r.Nonce,
		scopes:       slices.Clone([]string(r.Scopes)),
		responseType: r.ResponseType,
		responseMode: r.ResponseMode,
		challenge:    &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authRequests.Add(req.id, req)
	return req.copy(), nil
}

// AuthRequestByID returns a copy of the auth request.
func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.authRequests.Get(id)
	if !ok || s.now().After(req.expires) {
		return nil, errRequestGone
	}
	return req.copy(), nil
}

// AuthRequestByCode returns the auth request of code. A code is usable
// once: it is removed on first lookup, whatever the outcome of the
// exchange (RFC 6749 §4.1.2).
func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes.Get(code)
	if !ok {
		return nil, errors.New("code invalid or expired")
	}
	s.codes.Remove(code)
	req, ok := s.authRequests.Get(id)
	if !ok || !req.done || req.code != code || s.now().After(req.expires) {
		return nil, errors.New("code invalid or expired")
	}
	s.authRequests.Remove(id)
	return req.copy(), nil
}

// SaveAuthCode binds a freshly minted code to the auth request.
func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.authRequests.Get(id)
	if !ok || !req.done {
		return errRequestGone
	}
	// Codes live one minute (RFC 6749 §4.1.2 recommends at most ten).
	if e := s.now().Add(time.Minute); e.Before(req.expires) {
		req.expires = e
	}
	req.code = code
	s.codes.Add(code, id)
	return nil
}

// DeleteAuthRequest forgets the auth request and its code.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req, ok := s.authRequests.Peek(id); ok && req.code != "" {
		s.codes.Remove(req.code)
	}
	s.authRequests.Remove(id)
	return nil
}

// requestInfo extracts the session facts from the request types this
// storage hands out.
func requestInfo(r op.TokenRequest) (clientID, sid string, amr []string, authTime time.Time) {
	switch v := r.(type) {
	case *authRequest:
		return v.clientID, v.sid, v.amr, v.authTime
	case *refreshTokenRequest:
		return v.t.clientID, v.t.sid, v.t.amr, v.t.authTime
	}
	return "", "", nil, time.Time{}
}

func (s *storage) newAccessTokenLocked(clientID, subject, sid, refreshID string, scopes []string) *accessToken {
	t := &accessToken{
		id:        randomID(),
		clientID:  clientID,
		subject:   subject,
		sid:       sid,
		refreshID: refreshID,
		scopes:    slices.Clone(scopes),
		expires:   s.now().Add(accessTokenLifetime),
	}
	s.tokens.Add(t.id, t)
	return t
}

// sessionAliveLocked reports whether the OP session sid has not ended.
func (s *storage) sessionAliveLocked(sid string) bool {
	sess, ok := s.sessions.Peek(sid)
	return ok && !s.now().After(sess.expires)
}

// CreateAccessToken issues an opaque access token id.
func (s *storage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	clientID, sid, _, _ := requestInfo(r)
	if clientID == "" {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sessionAliveLocked(sid) {
		return "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the session has ended")
	}
	t := s.newAccessTokenLocked(clientID, r.GetSubject(), sid, "", r.GetScopes())
	// The op library turns the expiry into expires_in against the wall
	// clock (RFC 6749 §5.1), so it gets a wall-clock time.
	return t.id, time.Now().Add(accessTokenLifetime), nil
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token;
// with currentRefreshToken it rotates it (the old one stops working).
func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, r op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	clientID, sid, amr, authTime := requestInfo(r)
	if clientID == "" {
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !s.sessionAliveLocked(sid) {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the session has ended")
	}
	rt := &refreshToken{
		token:    randomID() + randomID(),
		clientID: clientID,
		subject:  r.GetSubject(),
		sid:      sid,
		amr:      slices.Clone(amr),
		scopes:   slices.Clone(r.GetScopes()),
		authTime: authTime,
		expires:  now.Add(refreshLifetime),
	}
	if currentRefreshToken != "" {
		old, ok := s.refresh.Peek(currentRefreshToken)
		if !ok || now.After(old.expires) || old.clientID != clientID {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
		}
		s.refresh.Remove(currentRefreshToken)
		s.tokens.Remove(old.accessID)
		rt.expires = old.expires
	}
	at := s.newAccessTokenLocked(clientID, rt.subject, sid, rt.token, rt.scopes)
	rt.accessID = at.id
	s.refresh.Add(rt.token, rt)
	return at.id, rt.token, time.Now().Add(accessTokenLifetime), nil
}

// TokenRequestByRefreshToken returns the request behind a live refresh
// token of a live session.
func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh.Peek(token)
	if !ok || s.now().After(rt.expires) || !s.sessionAliveLocked(rt.sid) {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
	}
	c := *rt
	c.scopes = slices.Clone(rt.scopes)
	c.amr = slices.Clone(rt.amr)
	return &refreshTokenRequest{t: c}, nil
}

// endSessionLocked ends the OP session sid and every token issued from it.
func (s *storage) endSessionLocked(sid string) {
	s.sessions.Remove(sid)
	for _, t := range s.tokens.Values() {
		if t.sid == sid {
			s.tokens.Remove(t.id)
		}
	}
	for _, rt := range s.refresh.Values() {
		if rt.sid == sid {
			s.refresh.Remove(rt.token)
		}
	}
}

// userSessionsLocked returns the live sessions of userID.
func (s *storage) userSessionsLocked(userID string) []*session {
	var out []*session
	for _, sess := range s.sessions.Values() {
		if sess.userID == userID && !s.now().After(sess.expires) {
			out = append(out, sess)
		}
	}
	return out
}

// TerminateSession ends every session of userID that signed in to clientID.
func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.userSessionsLocked(userID) {
		if sess.clients[clientID] {
			s.endSessionLocked(sess.sid)
		}
	}
	return nil
}

// TerminateSessionFromRequest ends the session named by the sid of the
// id_token_hint (RP-Initiated Logout 1.0 §2); without a hint there is no
// session to end (the demo OP keeps no browser cookie). It returns the
// validated redirect (with state).
func (s *storage) TerminateSessionFromRequest(ctx context.Context, r *op.EndSessionRequest) (string, error) {
	if r.IDTokenHintClaims != nil {
		sid, _ := r.IDTokenHintClaims.Claims["sid"].(string)
		s.mu.Lock()
		if sess, ok := s.sessions.Peek(sid); ok && sid != "" && sess.userID == r.UserID {
			s.endSessionLocked(sid)
		}
		s.mu.Unlock()
		if sid == "" && r.UserID != "" {
			if err := s.TerminateSession(ctx, r.UserID, r.ClientID); err != nil {
				return "", err
			}
		}
	}
	return r.RedirectURI, nil
}

// RevokeToken revokes an access token (by id) or a refresh token (RFC 7009 §2.1).
func (s *storage) RevokeToken(_ context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens.Peek(tokenOrID); ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		s.tokens.Remove(tokenOrID)
		return nil
	}
	if rt, ok := s.refresh.Peek(tokenOrID); ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		s.refresh.Remove(tokenOrID)
		s.tokens.Remove(rt.accessID)
	}
	return nil
}

// GetRefreshTokenInfo returns the user and id of a refresh token, or
// op.ErrInvalidRefreshToken.
func (s *storage) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh.Peek(token)
	if !ok || rt.clientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, rt.token, nil
}

// SigningKey is the ES256 key generated at start.
func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

// SignatureAlgorithms is [ES256].
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

// KeySet is the public half of the signing key (served at /keys).
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

// GetClientByClientID returns the registered client; an unknown one is a
// plain error (invalid_client).
func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, errors.New("unknown client")
	}
	return opClient{c}, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret in
// constant time.
func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	c, ok := s.clients[id]
	s.mu.Unlock()
	if !ok || c.Secret == "" || !passwordMatches(c.Secret, secret) {
		return errors.New("invalid client credentials")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; claims come from
// SetUserinfoFromRequest.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// setUserClaims releases every claim of the user: the demo OP gives each
// registered client the full profile whatever scopes were asked for.
func (s *storage) setUserClaims(ui *oidc.UserInfo, userID string) error {
	s.mu.Lock()
	u, ok := s.users[userID]
	s.mu.Unlock()
	if !ok {
		return errors.New("user not found")
	}
	ui.Subject = u.Username
	ui.Name = u.Name
	ui.PreferredUsername = u.Username
	ui.Email = u.Email
	ui.EmailVerified = oidc.Bool(u.Email != "")
	ui.AppendClaims("groups", slices.Clone(u.Groups))
	return nil
}

// SetUserinfoFromRequest fills the ID token's user claims and its sid.
func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, r op.IDTokenRequest, _ []string) error {
	if err := s.setUserClaims(ui, r.GetSubject()); err != nil {
		return err
	}
	if tr, ok := r.(op.TokenRequest); ok {
		if _, sid, _, _ := requestInfo(tr); sid != "" {
			ui.AppendClaims("sid", sid)
		}
	}
	return nil
}

// SetUserinfoFromToken answers the UserInfo endpoint (OIDC Core §5.3) for
// a live access token.
func (s *storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens.Peek(tokenID)
	alive := ok && t.subject == subject && !s.now().After(t.expires)
	s.mu.Unlock()
	if !alive {
		return errors.New("token is invalid or expired")
	}
	return s.setUserClaims(ui, subject)
}

// SetIntrospectionFromToken answers token introspection (RFC 7662 §2.2)
// for a live access token issued to clientID.
func (s *storage) SetIntrospectionFromToken(_ context.Context, ir *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	t, ok := s.tokens.Peek(tokenID)
	alive := ok && t.subject == subject && t.clientID == clientID && !s.now().After(t.expires)
	s.mu.Unlock()
	if !alive {
		return errors.New("token is invalid or expired")
	}
	ui := new(oidc.UserInfo)
	if err := s.setUserClaims(ui, subject); err != nil {
		return err
	}
	ir.SetUserInfo(ui)
	ir.Scope = t.scopes
	ir.ClientID = t.clientID
	ir.Expiration = oidc.FromTime(t.expires)
	return nil
}

// GetPrivateClaimsFromScopes adds nothing (access tokens are opaque).
func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID: the JWT profile grant is not supported.
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("private_key_jwt and the JWT profile grant are not supported")
}

// ValidateJWTProfileScopes: the JWT profile grant is not supported.
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

// Health always reports healthy.
func (s *storage) Health(context.Context) error { return nil }

// opClient adapts Client to op.Client.
type opClient struct{ c Client }

func (c opClient) GetID() string                       { return c.c.ID }
func (c opClient) RedirectURIs() []string              { return slices.Clone(c.c.RedirectURIs) }
func (c opClient) PostLogoutRedirectURIs() []string    { return slices.Clone(c.c.PostLogoutRedirectURIs) }
func (c opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c opClient) AuthMethod() oidc.AuthMethod {
	if c.c.Secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c opClient) LoginURL(id string) string {
	return pathLogin + "?authRequestID=" + url.QueryEscape(id)
}
func (c opClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c opClient) IDTokenLifetime() time.Duration       { return idTokenLifetime }
func (c opClient) DevMode() bool                        { return false }
func (c opClient) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c opClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c opClient) ClockSkew() time.Duration             { return 0 }
func (c opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
