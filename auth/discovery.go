package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Discovery retry: the first attempt runs at once, then after
// discoveryBackoffMin, doubling up to discoveryBackoffMax, until it works.
const (
	discoveryBackoffMin = time.Second
	discoveryBackoffMax = 30 * time.Second
)

// errNotDiscovered is the error of an issuer whose discovery has not yet
// succeeded (or a View built only to check a configuration).
var errNotDiscovered = errors.New("the identity provider has not been reached yet")

// discovered is what OpenID Connect Discovery 1.0 (§4) yields for an
// issuer: the provider's endpoints (nil for a bearer issuer with a
// configured jwks_url), its key set (RFC 7517) and its end-session
// endpoint (RP-Initiated Logout 1.0 §2.1), if any.
//
// The key set is seen through two refetch budgets: signIn for the tokens
// telegate asks for itself (ID tokens at sign-in and refresh; a bearer
// issuer's access tokens), backchannel for the logout tokens anyone may
// post to the back-channel endpoint. Junk logout tokens with unknown kids
// use up only the back-channel budget, and the first sign-in after the
// provider rotates its key still fetches the new one.
type discovered struct {
	op           *oidc.Provider
	keys         *keySet
	signIn       *keyBudget
	backchannel  *keyBudget
	endSession   string
	issParameter bool // RFC 9207: authorization responses carry iss
}

// discovery is one issuer's discovery, shared by every View that names the
// issuer with the same CA and timeout. It runs in the background and is
// retried with backoff until it succeeds; nothing waits for it.
type discovery struct {
	key, issuer, jwksURL string
	call                 *http.Client
	res                  atomic.Pointer[discovered]
	lastErr              atomic.Pointer[error]
	cancel               context.CancelFunc
	tried                chan struct{} // closed after the first attempt
}

// result is the discovery's outcome: ready, or the last error.
func (d *discovery) result() (*discovered, error) {
	if d == nil {
		return nil, errNotDiscovered
	}
	if r := d.res.Load(); r != nil {
		return r, nil
	}
	if e := d.lastErr.Load(); e != nil {
		return nil, fmt.Errorf("%w: %v", errNotDiscovered, *e)
	}
	return nil, errNotDiscovered
}

func (d *discovery) run(ctx context.Context, log *slog.Logger) {
	wait := discoveryBackoffMin
	for attempt := 1; ; attempt++ {
		r, err := d.once(ctx)
		if err == nil {
			d.res.Store(r)
		} else {
			err = shortError(err)
			d.lastErr.Store(&err)
		}
		if attempt == 1 {
			close(d.tried)
		}
		if err == nil {
			if attempt > 1 {
				log.Info("auth: identity provider reachable again", "issuer", d.issuer)
			}
			return
		}
		log.Warn("auth: identity provider discovery failed; its sign-in answers 503 until it works", "issuer", d.issuer, "retry_in", wait.String(), "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, discoveryBackoffMax)
	}
}

// once makes one discovery attempt, bounded by the client's timeout.
func (d *discovery) once(ctx context.Context) (*discovered, error) {
	jwksURL := d.jwksURL
	var op *oidc.Provider
	var doc discoveryDoc
	if jwksURL == "" {
		dctx, cancel := context.WithTimeout(ctx, d.call.Timeout)
		defer cancel()
		var err error
		op, err = oidc.NewProvider(oidc.ClientContext(dctx, d.call), d.issuer)
		if err != nil {
			return nil, fmt.Errorf("discovery at %s: %w", d.issuer, err)
		}
		if err := op.Claims(&doc); err != nil {
			return nil, fmt.Errorf("discovery document: %w", err)
		}
		if doc.JWKSURI == "" {
			return nil, errors.New("discovery document has no jwks_uri")
		}
		jwksURL = doc.JWKSURI
	}
	keys := newKeySet(jwksURL, d.call)
	return &discovered{op: op, keys: keys,
		signIn:      keys.budget(jwksRefetchEvery, jwksRefetchBurst),
		backchannel: keys.budget(jwksRefetchEvery, jwksRefetchBurst),
		endSession:  doc.EndSessionEndpoint, issParameter: doc.IssParameter}, nil
}

// maxErrorText bounds what a provider's failed answer puts in an error: a
// provider's error page (or a hostile one) is logged on every retry and
// every refused sign-in, and must not fill the disk.
const maxErrorText = 200

// shortError is err's first line, at most maxErrorText bytes (valid
// UTF-8), control characters replaced.
func shortError(err error) error {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > maxErrorText {
		msg = strings.ToValidUTF8(msg[:maxErrorText], "") + "…"
	}
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	return errors.New(msg)
}

// discoveryKey identifies an issuer's discovery: the issuer, a configured
// JWKS URL, and the CA file and timeout its clients use.
func discoveryKey(issuer, jwksURL, caFile string, timeout time.Duration) string {
	return issuer + "\x00" + jwksURL + "\x00" + caFile + "\x00" + timeout.String()
}

// discoveries are the Service's running discoveries by key.
type discoveries struct {
	mu     sync.Mutex
	log    *slog.Logger
	by     map[string]*discovery
	closed bool
}

func (ds *discoveries) init(log *slog.Logger) {
	ds.log = log
	ds.by = map[string]*discovery{}
}

// get returns the discovery for key, starting it when it is new.
func (ds *discoveries) get(key, issuer, jwksURL string, call *http.Client) *discovery {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if d := ds.by[key]; d != nil {
		return d
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &discovery{key: key, issuer: issuer, jwksURL: jwksURL, call: call, cancel: cancel, tried: make(chan struct{})}
	ds.by[key] = d
	if ds.closed {
		cancel()
		close(d.tried)
		return d
	}
	go d.run(ctx, ds.log)
	return d
}

// prune stops and forgets the discoveries whose keys are not in keep.
func (ds *discoveries) prune(keep map[string]bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for k, d := range ds.by {
		if !keep[k] {
			d.cancel()
			delete(ds.by, k)
		}
	}
}

// stop ends every discovery still retrying.
func (ds *discoveries) stop() {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.closed = true
	for _, d := range ds.by {
		d.cancel()
	}
}

// waitTried returns once d's first attempt has ended (or ctx has).
func (d *discovery) waitTried(ctx context.Context) {
	if d == nil {
		return
	}
	select {
	case <-d.tried:
	case <-ctx.Done():
	}
}
