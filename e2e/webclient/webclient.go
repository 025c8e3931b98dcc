// Package webclient is a browser-like HTTP client for end-to-end tests and
// benchmark harnesses: a cookie jar, trust in one local CA root, dials to
// loopback only, and a sign-in that fills in the development OpenID
// Provider's login form as a person would.
package webclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Client is a browser stand-in. Accept is sent with every request.
type Client struct {
	HTTP   *http.Client
	Jar    http.CookieJar
	Accept string
}

// New returns a client that trusts only the PEM root at rootFile and dials
// 127.0.0.1 whatever the host name (everything under test is on loopback).
func New(rootFile string) (*Client, error) { return NewFrom(rootFile, nil) }

// NewFrom is New with the client's connections bound to the loopback
// source address source (e.g. 127.0.0.60; nil: the kernel's choice), so
// that tests can tell clients apart by address.
func NewFrom(rootFile string, source net.IP) (*Client, error) {
	pem, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fmt.Errorf("local CA root: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("local CA root %s: no certificate", rootFile)
	}
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if source != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: source}
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", port))
		},
		ForceAttemptHTTP2:     true,
		ResponseHeaderTimeout: 20 * time.Second,
	}
	return &Client{
		HTTP:   &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second},
		Jar:    jar,
		Accept: "application/json",
	}, nil
}

// NoRedirect returns a copy of the HTTP client that stops at the first
// response.
func (c *Client) NoRedirect() *http.Client {
	h := *c.HTTP
	h.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &h
}

// Close drops idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// metaRefresh is an HTML page's immediate refresh to another URL.
var metaRefresh = regexp.MustCompile(`<meta http-equiv="refresh" content="0; url=([^"]+)">`)

// maxRefreshes bounds the meta refreshes Do follows for one request.
const maxRefreshes = 5

// Do sends req with hc (nil: c.HTTP) and returns the response with its
// body read (at most 1 MiB). With c.HTTP, an HTML page that refreshes at
// once to another URL (<meta http-equiv="refresh" content="0; url=…">) is
// followed with a GET, as a browser does, up to maxRefreshes times; a
// client that does not follow redirects (NoRedirect) stops there too.
func (c *Client) Do(hc *http.Client, req *http.Request) (*http.Response, []byte, error) {
	if hc == nil {
		hc = c.HTTP
	}
	for i := 0; ; i++ {
		if req.Header.Get("Accept") == "" {
			req.Header.Set("Accept", c.Accept)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		m := metaRefresh.FindSubmatch(body)
		if err != nil || m == nil || hc.CheckRedirect != nil || i == maxRefreshes ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return resp, body, err
		}
		next, err := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
		if err != nil {
			return resp, body, err
		}
		if req, err = http.NewRequest(http.MethodGet, next.String(), nil); err != nil {
			return resp, body, err
		}
	}
}

// Get fetches u, following redirects.
func (c *Client) Get(u string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	return c.Do(nil, req)
}

// PostForm posts form to u with extra headers, following redirects.
func (c *Client) PostForm(u string, form url.Values, hdr http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header[k] = v
	}
	return c.Do(nil, req)
}

var (
	formAction = regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]*)"`)
	hiddenID   = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]*)"`)
)

// ErrNoLoginForm is returned by SignIn when the page reached is not the
// identity provider's login form.
var ErrNoLoginForm = errors.New("webclient: the identity provider's login form was not shown")

// SignIn opens target on the gateway, is sent to the development OpenID
// Provider, fills in its login form (fields username and password) and
// returns the page the gateway finally serves.
func (c *Client) SignIn(target, user, password string) (*http.Response, []byte, error) {
	action, form, resp, body, err := c.loginForm(target, user, password)
	if err != nil {
		return resp, body, err
	}
	return c.PostForm(action, form, nil)
}

// loginForm opens target and returns the provider's login form's action
// and fields filled for user; the page reached when it is not that form.
func (c *Client) loginForm(target, user, password string) (action string, form url.Values, resp *http.Response, body []byte, err error) {
	resp, body, err = c.Get(target)
	if err != nil {
		return "", nil, nil, nil, err
	}
	m := formAction.FindSubmatch(body)
	if m == nil {
		return "", nil, resp, body, fmt.Errorf("%w (GET %s: %d at %s)", ErrNoLoginForm, target, resp.StatusCode, resp.Request.URL)
	}
	u, err := resp.Request.URL.Parse(string(m[1]))
	if err != nil {
		return "", nil, nil, nil, err
	}
	form = url.Values{"username": {user}, "password": {password}}
	if id := hiddenID.FindSubmatch(body); id != nil {
		form.Set("id", string(id[1]))
	}
	return u.String(), form, nil, nil, nil
}

// SignInUntil is SignIn that stops before the first redirect whose
// target stop accepts (for instance the gateway's callback) and returns
// that target unfollowed: the request that lands there is the caller's
// to send. ErrNoLoginForm as SignIn; an error when no such redirect comes
// within 10.
func (c *Client) SignInUntil(target, user, password string, stop func(*url.URL) bool) (*url.URL, error) {
	action, form, _, _, err := c.loginForm(target, user, password)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for range 10 {
		resp, _, err := c.Do(c.NoRedirect(), req)
		if err != nil {
			return nil, err
		}
		loc, err := resp.Location()
		if err != nil {
			return nil, fmt.Errorf("webclient: %s answered %d with no redirect", req.URL, resp.StatusCode)
		}
		if stop(loc) {
			return loc, nil
		}
		if req, err = http.NewRequest(http.MethodGet, loc.String(), nil); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("webclient: too many redirects before the stop")
}

// Cookie returns the named cookie the jar holds for base, or nil.
func (c *Client) Cookie(base, name string) *http.Cookie {
	u, err := url.Parse(base + "/")
	if err != nil {
		return nil
	}
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}
