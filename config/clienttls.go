package config

import (
	"crypto/tls"
	"fmt"
)

// ClientTLSConfig returns the TLS configuration telegate uses as a client
// toward a server of its own deployment (an https upstream, Redis): TLS
// 1.2 or later (RFC 9325 §3.1.1), the server's certificate verified
// against caFile (PEM, read by ReadCertPool) or, when caFile is "", the
// system roots, for serverName (when "", the caller's dial address).
// certFile and keyFile, both or neither, are the client certificate for
// mutual TLS; keyFile follows the rule for secret files
// (CheckSecretFile). field names the configuration section in errors
// (e.g. "redis.tls"); a problem with a file is a FieldError at that
// file's field under field (e.g. "redis.tls.ca_file"), for the caller to
// locate; errors never contain the key.
func ClientTLSConfig(field, caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := ReadCertPool(caFile)
		if err != nil {
			return nil, FieldError{Field: field + ".ca_file", Message: err.Error()}
		}
		tc.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, FieldError{Field: field, Message: "cert_file and key_file go together"}
		}
		if err := CheckSecretFile(keyFile); err != nil {
			return nil, FieldError{Field: field + ".key_file", Message: err.Error()}
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s client certificate: %w", field, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
