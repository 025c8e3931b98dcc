package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// AuditShip (audit.ship) sends every record of the trail, once and in
// order, to a syslog server over TLS and/or an HTTPS endpoint receiving
// FHIR Bundles; both may be set. The trail itself is the queue: each
// target keeps a cursor (its chain position) in
// <data_dir>/audit-ship/<target>.cursor, written after each delivery, so a
// receiver that is down loses nothing and gets everything, in order, when
// it is back — also after a restart of telegate.
type AuditShip struct {
	// Syslog is an RFC 5424 syslog server reached over TLS (RFC 5425).
	Syslog AuditSyslog `yaml:"syslog"`
	// HTTPS is a FHIR endpoint that receives batch Bundles of AuditEvents.
	HTTPS AuditHTTPS `yaml:"https"`
	// Interval is how often the trail is checked for records to ship.
	// Default 1s; 10ms to 1m.
	Interval time.Duration `yaml:"interval"`
	// Batch is the most records sent at once. Default 500; 1 to 10000.
	Batch int `yaml:"batch"`
	// Timeout bounds one delivery (connect, send, answer). Default 10s;
	// at most 5m.
	Timeout time.Duration `yaml:"timeout"`
	// RetryMax is the longest wait between attempts while a target is
	// down (the wait doubles from Interval). Default 30s.
	RetryMax time.Duration `yaml:"retry_max"`
}

// AuditSyslog is a syslog-over-TLS target (RFC 5425: octet-counted RFC
// 5424 messages over TLS 1.2 or later).
type AuditSyslog struct {
	// Addr is the server, "host:port" (RFC 5425 §4.1 registers 6514).
	// Empty: no syslog shipping.
	Addr string `yaml:"addr"`
	// CAFile (PEM) is trusted for the server's certificate instead of the
	// system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name checked in the server's certificate.
	// Default: the host of Addr.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are a client certificate for mutual TLS
	// (RFC 5425 §5.2), both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// AppName is the APP-NAME of the messages (RFC 5424 §6.2.5, at most
	// 48 printable characters). Default "telegate".
	AppName string `yaml:"app_name"`
}

// AuditHTTPS is an HTTPS target receiving FHIR R4 batch Bundles whose
// entries PUT each AuditEvent at AuditEvent/<id> (so a server keeps each
// record once however often it is sent). Any 2xx answer acknowledges a
// Bundle.
type AuditHTTPS struct {
	// URL is the endpoint (https only; the FHIR server's base URL).
	// Empty: no HTTPS shipping.
	URL string `yaml:"url"`
	// CAFile (PEM) is trusted for the server's certificate instead of the
	// system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS, both
	// or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Defaults of audit.ship.
const (
	DefaultAuditShipInterval = time.Second
	DefaultAuditShipBatch    = 500
	DefaultAuditShipTimeout  = 10 * time.Second
	DefaultAuditShipRetryMax = 30 * time.Second
	DefaultAuditSyslogApp    = "telegate"
	// AuditShipDirInDataDir is where the shipping cursors are kept.
	AuditShipDirInDataDir = "audit-ship"
)

// AuditShipDirIn is the directory of the shipping cursors in dataDir:
// <dataDir>/audit-ship.
func AuditShipDirIn(dataDir string) string { return filepath.Join(dataDir, AuditShipDirInDataDir) }

// Enabled reports whether any target is set.
func (s AuditShip) Enabled() bool { return s.Syslog.Addr != "" || s.HTTPS.URL != "" }

func (s *AuditShip) applyDefaults() {
	set := func(p *int64, v int64) {
		if *p == 0 {
			*p = v
		}
	}
	set((*int64)(&s.Interval), int64(DefaultAuditShipInterval))
	set((*int64)(&s.Timeout), int64(DefaultAuditShipTimeout))
	set((*int64)(&s.RetryMax), int64(DefaultAuditShipRetryMax))
	if s.Batch == 0 {
		s.Batch = DefaultAuditShipBatch
	}
	if s.Syslog.AppName == "" {
		s.Syslog.AppName = DefaultAuditSyslogApp
	}
}

func (s *AuditShip) validate(r *Report) {
	if s.Interval < 10*time.Millisecond || s.Interval > time.Minute {
		r.Errorf("interval", "must be 10ms to 1m")
	}
	if s.Batch < 1 || s.Batch > 10000 {
		r.Errorf("batch", "must be 1 to 10000")
	}
	if s.Timeout <= 0 || s.Timeout > 5*time.Minute {
		r.Errorf("timeout", "must be more than 0 and at most 5m")
	}
	if s.RetryMax < s.Interval {
		r.Errorf("retry_max", "must be at least interval")
	}
	if sl := &s.Syslog; sl.Addr != "" {
		sr := r.Sub("syslog")
		if h, p, err := net.SplitHostPort(sl.Addr); err != nil || h == "" || p == "" {
			sr.Errorf("addr", "must be host:port, e.g. siem.example.org:6514")
		}
		checkFile(sr, "ca_file", sl.CAFile)
		checkClientPair(sr, sl.CertFile, sl.KeyFile)
		if n := sl.AppName; len(n) > 48 || strings.IndexFunc(n, func(c rune) bool { return c < 33 || c > 126 }) >= 0 {
			sr.Errorf("app_name", "must be at most 48 printable ASCII characters without spaces (RFC 5424 §6.2.5)")
		}
	} else if s.Syslog != (AuditSyslog{AppName: s.Syslog.AppName}) {
		r.Sub("syslog").Errorf("addr", "is required with the other syslog settings")
	}
	if h := &s.HTTPS; h.URL != "" {
		hr := r.Sub("https")
		if u, err := url.Parse(h.URL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			hr.Errorf("url", "must be an https:// URL without credentials, query or fragment")
		}
		checkFile(hr, "ca_file", h.CAFile)
		checkClientPair(hr, h.CertFile, h.KeyFile)
	} else if s.HTTPS != (AuditHTTPS{}) {
		r.Sub("https").Errorf("url", "is required with the other https settings")
	}
}

// checkClientPair checks a client certificate and key given both or
// neither.
func checkClientPair(r *Report, certFile, keyFile string) {
	if (certFile == "") != (keyFile == "") {
		r.Errorf("cert_file", "cert_file and key_file go together")
		return
	}
	checkKeyPair(r, certFile, keyFile)
}
