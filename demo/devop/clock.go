package devop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// clock applies the injected clock to ID tokens. The op library stamps
// iat and exp with the wall clock; when Options.Now is set, the token
// endpoint's answer is taken, its ID token's iat and exp are moved by the
// difference between the injected and the wall clock, and it is signed
// again with the same key. Without Options.Now the handler is unchanged.
func (s *Server) clock(next http.Handler) http.Handler {
	if !s.injectedClock {
		return next
	}
	tokenPath := s.provider.TokenEndpoint().Relative()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != tokenPath {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			if b, err := s.reclock(body); err == nil {
				body = b
			} else {
				s.log.Error("demo identity provider: re-stamp ID token", "error", err)
				http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

// reclock rewrites the id_token of a token response (RFC 6749 §5.1, OIDC
// Core §3.1.3.3).
func (s *Server) reclock(body []byte) ([]byte, error) {
	var resp map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return nil, err
	}
	raw, ok := resp["id_token"]
	if !ok {
		return body, nil
	}
	var idToken string
	if err := json.Unmarshal(raw, &idToken); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(idToken, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(&s.st.key.key.PublicKey)
	if err != nil {
		return nil, err
	}
	claims := map[string]any{}
	pd := json.NewDecoder(bytes.NewReader(payload))
	pd.UseNumber()
	if err := pd.Decode(&claims); err != nil {
		return nil, err
	}
	shift := int64(time.Until(s.st.now()).Round(time.Second) / time.Second)
	for _, name := range []string{"iat", "exp"} {
		n, ok := claims[name].(json.Number)
		if !ok {
			return nil, fmt.Errorf("ID token without numeric %s", name)
		}
		v, err := n.Int64()
		if err != nil {
			return nil, err
		}
		claims[name] = v + shift
	}
	signed, err := s.sign(claims, "JWT")
	if err != nil {
		return nil, err
	}
	resp["id_token"], err = json.Marshal(signed)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// sign signs claims with the provider's ES256 key, with kid and typ in
// the protected header (RFC 7515 §4.1.4, §4.1.9).
func (s *Server) sign(claims any, typ jose.ContentType) (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: s.st.key.key, KeyID: s.st.key.id}},
		(&jose.SignerOptions{}).WithType(typ),
	)
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}
