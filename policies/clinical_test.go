package policies

import (
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

// clinicalExclusions are the note-field exclusions of docs/config.md
// ("Note-field exclusions"): the free-text fields of a notes form and of
// FHIR resources, exempt from the SQL injection, XSS and command
// injection groups.
var clinicalExclusions = []config.InspectExclusion{{
	Args: []string{"note", "json.note.*.text", "json.text.div", "json.conclusion", "json.code.text",
		"json.dosageinstruction.*.text", "json.payload.*.contentstring", "json.medicationcodeableconcept.text"},
	Groups: []string{"sqli", "xss", "rce"},
}}

// clinicalBlockedWithout are the corpus items the Core Rule Set (paranoia
// level 1) refuses on a route without the exclusions.
var clinicalBlockedWithout = []string{"fhir-diagnosticreport.json", "note-discharge.txt", "note-psych.txt"}

// clinicalCorpus reads testdata/clinical: notes (*.txt, sent as the form
// field "note") and FHIR resources (*.json, sent as application/fhir+json).
func clinicalCorpus(t *testing.T) map[string]req {
	t.Helper()
	files, err := filepath.Glob("testdata/clinical/*")
	if err != nil || len(files) < 15 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	out := map[string]req{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		if strings.HasSuffix(name, ".json") {
			out[name] = req{"POST", "/fhir/" + strings.TrimSuffix(name, ".json"), "application/fhir+json", string(data)}
		} else {
			out[name] = req{"POST", "/notes", "application/x-www-form-urlencoded", "patient=p-1029&note=" + url.QueryEscape(string(data))}
		}
	}
	return out
}

// TestClinicalCorpus: ordinary clinical free text (semicolons, quotes,
// "--", "<", "|", "/", "select … from formulary", drug names, ICD-10 and
// SNOMED codes, FHIR resources) passes a route with the documented
// note-field exclusions, and is refused on a route without them wherever
// the rule set refuses it; an attack in an excluded field is still refused
// by the groups not excluded, and an attack in another field by all.
func TestClinicalCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second engine")
	}
	t.Parallel()
	notes := config.Route{ID: "notes", InspectExclusions: clinicalExclusions}
	plain := config.Route{ID: "plain"}
	in, err := NewInspector(config.Inspection{Enabled: true, ParanoiaLevel: config.DefaultParanoiaLevel, AnomalyThreshold: config.DefaultAnomalyThreshold},
		[]config.Route{notes, plain}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	notesSrv, _ := serve(t, in, &notes)
	plainSrv, _ := serve(t, in, &plain)
	corpus := clinicalCorpus(t)
	var blocked []string
	for name, q := range corpus {
		if resp, body := q.do(t, notesSrv); resp.StatusCode != 200 {
			t.Errorf("%s with exclusions: status %d, want 200 (%.80s)", name, resp.StatusCode, body)
		}
		resp, _ := q.do(t, plainSrv)
		switch resp.StatusCode {
		case 403:
			blocked = append(blocked, name)
		case 200:
		default:
			t.Errorf("%s without exclusions: status %d", name, resp.StatusCode)
		}
	}
	attacks := []struct {
		name string
		q    req
	}{
		{"path traversal in the note (lfi not excluded)", req{"POST", "/notes", "application/x-www-form-urlencoded", "note=" + url.QueryEscape("see ../../../../etc/passwd")}},
		{"sql injection in another field", req{"POST", "/notes", "application/x-www-form-urlencoded", "note=ok&patient=" + url.QueryEscape("1' OR '1'='1")}},
		{"xss in another json field", req{"POST", "/fhir/Observation", "application/fhir+json", `{"resourceType":"Observation","status":"<script>alert(document.cookie)</script>"}`}},
		{"sql injection in the query", req{"GET", "/notes?id=" + url.QueryEscape("1 UNION SELECT password FROM users--"), "", ""}},
	}
	for _, a := range attacks {
		if resp, _ := a.q.do(t, notesSrv); resp.StatusCode != 403 {
			t.Errorf("%s with exclusions: status %d, want 403", a.name, resp.StatusCode)
		}
	}
	slices.Sort(blocked)
	if !slices.Equal(blocked, clinicalBlockedWithout) {
		t.Errorf("refused without exclusions: %q, want %q", blocked, clinicalBlockedWithout)
	}
}
