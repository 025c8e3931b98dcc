package edgetls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/telegate/telegate/config"
)

// Pending is a TLS host table that Prepare checked and readied; Apply
// makes it the one served, Discard drops it. Exactly one of the two must
// be called.
type Pending struct {
	m        *Manager
	base     *selection // the selection served when Prepare ran
	sel      *selection
	addLocal []string // local names Prepare issued for
	done     bool
}

// Reload is Prepare then Apply, with c's client CAs read by Prepare: from
// its return on, handshakes and plain-HTTP requests see c's host table and
// device CA pools. On error nothing changed.
func (m *Manager) Reload(ctx context.Context, c *config.Config) error {
	p, err := m.Prepare(ctx, c, nil)
	if err != nil {
		return err
	}
	p.Apply()
	return nil
}

// Prepare checks c's TLS section as New does and readies its host table
// without serving it: certificate files are read and their key pairs and
// names checked, the local CA (started now if no host used it before)
// issues leaves for local names not served yet, and ACME names are noted
// for management. trust is the device CA pools of c's client_cas that
// handshakes are to verify with from Apply on: the generation's own
// (LoadClientTrust of c), so that auth maps device identities from the
// same pools; nil reads them here. A trust without a pool for each of c's
// client_cas ids is refused. A configuration that changes a setting the
// Manager keeps for the life of the process — tls.acme, tls.storage,
// tls.storage_key_file, data_dir — or that adds the first acme host when
// none was configured at start, is refused naming the field; every
// problem is reported at once. ctx bounds the local CA's issuing.
//
// Prepare, Apply and Discard must not run concurrently with another
// Prepare whose Pending is still open (the node's reloads are serialised).
func (m *Manager) Prepare(ctx context.Context, c *config.Config, trust *ClientTrust) (*Pending, error) {
	if c == nil {
		return nil, errors.New("edgetls: no configuration")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return nil, errors.New("edgetls: closed")
	}
	p, err := checkConfig(c)
	if err != nil {
		return nil, fmt.Errorf("tls configuration: %w", err)
	}
	var errs []error
	fixed := func(field string, same bool) {
		if !same {
			errs = append(errs, fmt.Errorf("%s changed, but it cannot change while telegate runs: restart telegate to apply it", field))
		}
	}
	fixed("data_dir", c.DataDir == m.fixed.dataDir)
	fixed("tls.acme", reflect.DeepEqual(c.TLS.ACME, m.fixed.acme))
	fixed("tls.storage", c.TLS.Storage == m.fixed.storage)
	fixed("tls.storage_key_file", c.TLS.StorageKeyFile == m.fixed.storageKeyFile)
	if len(p.acmeNames) > 0 && m.acmeCfg == nil {
		for i, h := range c.TLS.Hosts {
			if h.Mode == ModeACME {
				errs = append(errs, fmt.Errorf("%s: mode acme needs the ACME issuer, which starts only when an acme host is configured at start: restart telegate to add the first acme host", entryLabel(i, h)))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("tls configuration: %w", err)
	}
	if trust == nil {
		var err error
		if trust, err = LoadClientTrust(c); err != nil {
			return nil, fmt.Errorf("client certificate CAs: %w", err)
		}
	}
	for i, ca := range c.ClientCAs {
		if trust.byID[ca.ID] == nil {
			return nil, fmt.Errorf("client_cas[%d] (%s): no CA pool was loaded for it", i, ca.ID)
		}
	}
	if len(trust.byID) != len(c.ClientCAs) {
		return nil, errors.New("client_cas: the CA pools given are not those of this configuration")
	}
	if err := loadFiles(p, time.Now()); err != nil {
		return nil, err
	}
	base := m.cur.Load()
	sel := &selection{plan: p, trust: trust, local: base.local}
	pd := &Pending{m: m, base: base, sel: sel}
	if len(p.localNames) > 0 {
		ls, err := m.startLocal(p.localNames)
		if err != nil {
			return nil, fmt.Errorf("tls configuration: %w", err)
		}
		sel.local = ls
		pd.addLocal = missing(p.localNames, base.plan.localNames)
		if len(pd.addLocal) > 0 {
			// The CA signs for the names served and those being added
			// until Apply or Discard settles which.
			ls.ca.allow(union(base.plan.localNames, p.localNames))
			if err := ls.cfg.ManageSync(ctx, pd.addLocal); err != nil {
				ls.ca.allow(base.plan.localNames)
				ls.cache.RemoveManaged(subjects(pd.addLocal))
				return nil, fmt.Errorf("local CA: issuing certificates for %s: %w", strings.Join(pd.addLocal, ", "), err)
			}
		}
	}
	return pd, nil
}

// Apply serves the prepared host table, device CA pools and lowest TLS
// version from the next handshake on: names
// no longer configured stop being served (their certificates leave the
// caches and are no longer renewed), new acme names are obtained in the
// background, and the new table's certificate files are polled instead
// of the old one's.
func (p *Pending) Apply() {
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	old, next := p.base, p.sel
	m.watchFiles(next)
	m.cur.Store(next)
	if old.stopFiles != nil {
		old.stopFiles()
	}
	if ls := next.local; ls != nil {
		ls.ca.allow(next.plan.localNames)
		if gone := missing(old.plan.localNames, next.plan.localNames); len(gone) > 0 {
			ls.cache.RemoveManaged(subjects(gone))
		}
	}
	if m.acmeCfg != nil {
		if gone := missing(old.plan.acmeNames, next.plan.acmeNames); len(gone) > 0 {
			m.acmeCache.RemoveManaged(subjects(gone))
		}
		// Before ACME management starts (startACME), it takes the
		// served names itself.
		if added := missing(next.plan.acmeNames, old.plan.acmeNames); len(added) > 0 && m.acmeStarted {
			if err := m.acmeCfg.ManageAsync(m.ctx, added); err != nil {
				m.log.Error("acme certificate management failed to start", "names", added, "error", err.Error())
			}
		}
	}
	m.log.Info("tls hosts applied", "local", next.plan.localNames, "acme", next.plan.acmeNames, "files", len(next.plan.files),
		"client_cas", len(next.trust.byID), "min_version", tls.VersionName(next.plan.minVersion))
}

// Discard drops the prepared table: leaves the local CA issued for it
// are taken out of the cache, and the served table stays as it was.
func (p *Pending) Discard() {
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	if ls := p.sel.local; ls != nil && len(p.addLocal) > 0 {
		ls.ca.allow(p.base.plan.localNames)
		ls.cache.RemoveManaged(subjects(p.addLocal))
	}
}

// missing returns the names of a that are not in b.
func missing(a, b []string) []string {
	var out []string
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

func union(a, b []string) []string {
	return append(slices.Clone(a), missing(b, a)...)
}

func subjects(names []string) []certmagic.SubjectIssuer {
	out := make([]certmagic.SubjectIssuer, len(names))
	for i, n := range names {
		out[i] = certmagic.SubjectIssuer{Subject: n}
	}
	return out
}
