package media

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
)

// TestRegression_VisitPageNamesTheAccount: the lobby and the join page
// (the waiting room) name the signed-in account and offer Sign out and
// Switch account, as telegate's own pages do, in the page's language.
// Members: a clinician by name (English and Spanish), a clinician known
// only by email, a patient whose name holds markup (escaped, never run), a
// service's bearer token and the guest page without an account (no
// account, no sign-out).
func TestRegression_VisitPageNamesTheAccount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	get := func(path, user, lang string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: page.LangCookie, Value: lang})
		if user != "" {
			req.Header.Set("X-Test-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s as %q: %d", path, user, resp.StatusCode)
		}
		return string(b)
	}
	signOut := `action="/.telegate/logout"`
	for _, tc := range []struct {
		path, user, lang string
		says             []string // "" = no account at all
	}{
		{"/.telegate/visits/lobby", "dr", "en", []string{"Signed in as</span> <span class=\"name\">Dr. Ada Owner</span>", ">Sign out</button>", ">Switch account</button>"}},
		{"/.telegate/visits/lobby", "dr", "es", []string{"Sesión iniciada como</span> <span class=\"name\">Dr. Ada Owner</span>", ">Cerrar sesión</button>", ">Cambiar de cuenta</button>"}},
		{"/.telegate/visits/lobby", "mail", "en", []string{`<span class="name">dr.mail@hospital.test</span>`}},
		{"/.telegate/visits/join", "pat", "en", []string{`<span class="name">Pat Patient</span>`, ">Sign out</button>"}},
		{"/.telegate/visits/join", "mark", "en", []string{`<span class="name">&lt;img src=x onerror=alert(1)&gt; &amp; &#34;Co&#34;</span>`}},
		{"/.telegate/visits/join", "svc", "en", nil},
		{"/.telegate/visits/guest", "", "en", nil},
	} {
		b := get(tc.path, tc.user, tc.lang)
		if strings.Contains(b, "<!--#account") {
			t.Errorf("%s as %q: the account marker is left in the page", tc.path, tc.user)
		}
		if tc.says == nil {
			if strings.Contains(b, signOut) || strings.Contains(b, `data-testid="signed-in-as"`) {
				t.Errorf("%s as %q: names an account or offers sign-out with no sign-in session", tc.path, tc.user)
			}
			continue
		}
		if strings.Count(b, signOut) != 2 || !strings.Contains(b, `name="switch" value="1"`) {
			t.Errorf("%s as %q: no Sign out and Switch account forms", tc.path, tc.user)
		}
		for _, s := range tc.says {
			if !strings.Contains(b, s) {
				t.Errorf("%s as %q (%s): missing %s", tc.path, tc.user, tc.lang, s)
			}
		}
		if strings.Contains(b, "<img src=x") {
			t.Errorf("%s as %q: the name's markup reached the page unescaped", tc.path, tc.user)
		}
	}
}
