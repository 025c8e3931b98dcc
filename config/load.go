package config

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	yamlparser "github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// MaxFileBytes is the largest configuration file Load accepts (1 MiB).
const MaxFileBytes = 1 << 20

// MaxSecretFileBytes is the largest secret file (*_file) Load reads (64 KiB).
const MaxSecretFileBytes = 64 << 10

// FieldError is one problem found in a configuration file.
//
// File is the file name as given to Load or Parse; Line and Column are
// 1-based positions of the offending key (0 when the field is not in the
// file, e.g. a default or a built-in configuration). Field is the dotted
// path of the field with list indexes, e.g. "routes[2].upstream"; "" for a
// problem with the file as a whole.
type FieldError struct {
	File    string
	Line    int
	Column  int
	Field   string
	Message string
}

// Error formats the problem as "file:line: field: message", leaving out
// the parts that are unknown.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Errors is every problem found in one configuration, in file order. Its
// Error lists them one per line. Load and Validate return it (as error)
// whenever at least one problem was found; use errors.As to get the list.
type Errors []FieldError

// Error lists every problem, one "file:line: field: message" per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// SortErrors orders problems by line (problems without one last), then
// by field, keeping the order of equal ones.
func SortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			// Problems without a line (not in the file) go last.
			if es[i].Line == 0 || es[j].Line == 0 {
				return es[j].Line == 0 && es[i].Line != 0
			}
			return es[i].Line < es[j].Line
		}
		return false
	})
}

// Load reads, decodes and validates the configuration file at path.
//
// The steps, each documented in docs/config.md:
//  1. The YAML (at most MaxFileBytes) is parsed with goccy/go-yaml and
//     decoded strictly: unknown keys, duplicate keys, type mismatches,
//     anchors/aliases and several documents are errors.
//  2. A scalar value that is exactly "${NAME}" is replaced by the
//     environment variable NAME (a missing variable is an error naming it).
//     Keys are never expanded; a "${" anywhere else in a value is an error.
//  3. Relative paths (data_dir, audit.file, every *_file and *_dir) are made
//     absolute against the directory of path.
//  4. Secrets given as *_file (client_secret_file, encryption_key_file,
//     key_file, password_file, …) are read by the rule for secret files
//     (see CheckSecretFile: a regular, non-empty file of at most
//     MaxSecretFileBytes that is neither readable nor writable by every
//     user), and one trailing newline is trimmed. The
//     secret lands in its plain field (client_secret, …) and the *_file
//     field is emptied, so consumers read one field only.
//  5. ApplyDefaults fills what the file leaves out.
//  6. Validate checks the whole configuration.
//
// Every problem found is returned at once as Errors, each carrying
// file:line and the field path. Warnings (valid but probably unintended
// settings, such as a route without a policy) are in Config.Warnings.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Message: fmt.Sprintf("cannot read configuration: %v", errors.Unwrap(err))}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, Errors{{File: path, Message: fmt.Sprintf("cannot read configuration: %v", err)}}
	}
	return Parse(data, path)
}

// Parse decodes and validates data as if read from the file name (used in
// messages and as the base for relative paths). It behaves like Load.
func Parse(data []byte, name string) (*Config, error) {
	return parse(data, name, os.LookupEnv)
}

func parse(data []byte, name string, lookupEnv func(string) (string, bool)) (*Config, error) {
	cfg, errs := parseAll(data, name, lookupEnv, true)
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// LoadPartial is Load for reporting: besides the problems it returns what
// could be decoded (nil when the file is not YAML at all), so that the
// parts built from it can report their own problems in the same run
// (node.Check). The configuration is never to be run.
func LoadPartial(path string) (*Config, Errors) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Message: fmt.Sprintf("cannot read configuration: %v", errors.Unwrap(err))}}
	}
	return parseAll(data, path, os.LookupEnv, true)
}

// LoadSettings reads the file at path like Load, but reads no secret — a
// *_file is not opened and a "${NAME}" whose variable is not set becomes
// "" — and does not validate. It is for commands that need only the
// file's paths and settings, such as the audit trail's, without the
// secrets of the running configuration (telegate audit verify). Errors:
// the file cannot be read or decoded.
func LoadSettings(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Message: fmt.Sprintf("cannot read configuration: %v", errors.Unwrap(err))}}
	}
	anyEnv := func(k string) (string, bool) {
		v, _ := os.LookupEnv(k)
		return v, true
	}
	cfg, errs := parseAll(data, path, anyEnv, false)
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// Covers reports whether es has a problem at field or at a field that
// contains it: a part's problem there is a consequence, not news.
func (es Errors) Covers(field string) bool {
	for _, e := range es {
		if underAny(field, []string{e.Field}) {
			return true
		}
	}
	return false
}

// parseAll decodes data; full is Load's way (secrets read, validated),
// !full is LoadSettings'.
func parseAll(data []byte, name string, lookupEnv func(string) (string, bool), full bool) (*Config, Errors) {
	d := &decoder{
		file:      name,
		pos:       map[string]token.Position{},
		envPaths:  map[string]bool{},
		fromFile:  map[string]secretSource{},
		lookupEnv: lookupEnv,
	}
	if len(data) > MaxFileBytes {
		return nil, Errors{{File: name, Message: fmt.Sprintf("file is larger than %d bytes", MaxFileBytes)}}
	}
	f, err := yamlparser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{d.yamlError("", err)}
	}
	cfg := &Config{Source: name}
	switch {
	case len(f.Docs) > 1:
		tk := f.Docs[1].Start // the "---" that starts the second document
		if tk == nil {
			tk = f.Docs[1].GetToken()
		}
		d.errAt(tk, "", "only one YAML document is allowed")
	case len(f.Docs) == 1 && f.Docs[0].Body != nil:
		body := d.prepare(f.Docs[0].Body, "")
		d.decode(body, reflect.ValueOf(cfg).Elem(), "")
	}
	// Decoding problems do not stop here: validation still runs over what
	// could be decoded, so that one run reports everything. Validation
	// messages about a field that already failed to decode are dropped.
	failed := make([]string, 0, len(d.errs))
	for _, e := range d.errs {
		failed = append(failed, e.Field)
	}

	base, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		base = filepath.Dir(name)
	}
	root := reflect.ValueOf(cfg).Elem()
	d.resolvePaths(root, "", base)
	n := len(d.errs)
	if full {
		d.readSecrets(root, "")
	}
	for _, e := range d.errs[n:] { // a secret file already refused is not checked again
		failed = append(failed, e.Field)
	}
	cfg.applyDefaults(d.present)
	d.resolvePaths(root, "", base) // defaults such as data_dir are relative too
	if !full {
		for i := range d.errs {
			d.place(&d.errs[i])
		}
		cfg.positions = d
		return cfg, d.errs
	}

	errs, warns := cfg.check(d.envPaths)
	for _, e := range errs {
		if !underAny(e.Field, failed) {
			d.errs = append(d.errs, d.atSecretFile(e))
		}
	}
	for i := range d.errs {
		d.place(&d.errs[i])
	}
	for i := range warns {
		d.place(&warns[i])
	}
	SortErrors(d.errs)
	SortErrors(warns)
	cfg.Warnings = warns
	cfg.positions = d
	if len(d.errs) > 0 {
		return cfg, d.errs
	}
	return cfg, nil
}

// Problem is a FieldError at field (a full path such as
// "routes[2].upstream") with the file and line the configuration has for
// it, or for the nearest enclosing field: the code that builds a part
// from the configuration reports through it, so that what it refuses is
// located like every validation error.
func (c *Config) Problem(field, format string, args ...any) FieldError {
	e := FieldError{File: c.Source, Field: field, Message: fmt.Sprintf(format, args...)}
	if c.positions != nil {
		c.positions.place(&e)
	}
	return e
}

// ProblemOf is Problem for err, a part's refusal of what it built at
// field: when err is (or wraps) a FieldError naming a field relative to
// that part (say "upstream_tls.ca_file"), the problem is at that field
// under field, where the file's own report of it is (so Check shows it
// once); otherwise at field, with err's text.
func (c *Config) ProblemOf(field string, err error) FieldError {
	if fe := (FieldError{}); errors.As(err, &fe) && fe.Field != "" {
		return c.Problem(joinPath(field, fe.Field), "%s", fe.Message)
	}
	return c.Problem(field, "%s", err.Error())
}

// decoder walks the YAML AST alongside the Config type so that every
// problem is found (not only the first) and every field's position is
// known for later messages.
type decoder struct {
	file      string
	pos       map[string]token.Position // field path → position of its key
	envPaths  map[string]bool           // field paths whose value came from ${ENV}
	fromFile  map[string]secretSource   // secret field path → the *_file it was read from
	lookupEnv func(string) (string, bool)
	errs      Errors
}

// present reports whether the file set the field at path.
func (d *decoder) present(path string) bool {
	_, ok := d.pos[path]
	return ok
}

func (d *decoder) setPos(path string, tk *token.Token) {
	if tk != nil && tk.Position != nil {
		d.pos[path] = *tk.Position
	}
}

func (d *decoder) errAt(tk *token.Token, field, msg string) {
	e := FieldError{File: d.file, Field: field, Message: msg}
	if tk != nil && tk.Position != nil {
		e.Line, e.Column = tk.Position.Line, tk.Position.Column
	}
	d.errs = append(d.errs, e)
}

// place fills in the position of e from its field path, or from the
// nearest enclosing field the file has.
func (d *decoder) place(e *FieldError) {
	e.File = d.file
	if e.Line > 0 {
		return
	}
	for p := e.Field; p != ""; p = parentPath(p) {
		if pos, ok := d.pos[p]; ok {
			e.Line, e.Column = pos.Line, pos.Column
			return
		}
	}
}

// underAny reports whether path is one of roots or inside one of them.
func underAny(path string, roots []string) bool {
	for _, r := range roots {
		if r == "" || path == r || strings.HasPrefix(path, r+".") || strings.HasPrefix(path, r+"[") {
			return true
		}
	}
	return false
}

// parentPath drops the last element of a field path:
// "routes[2].policy.allow[0]" → "routes[2].policy.allow" → "routes[2].policy"
// → "routes[2]" → "routes" → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func indexPath(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

// yamlError turns a goccy/go-yaml error into a FieldError with position.
func (d *decoder) yamlError(field string, err error) FieldError {
	e := FieldError{File: d.file, Field: field}
	var ye yaml.Error
	if errors.As(err, &ye) {
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
		e.Message = ye.GetMessage()
	} else {
		e.Message = err.Error()
	}
	return e
}

var (
	envRef    = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)
	errAnchor = "anchors, aliases and merge keys are not supported; write the value out"
)

// prepare walks the tree once before decoding: it refuses anchors,
// aliases and merge keys (replacing them with null so decoding goes on),
// and expands whole-value ${NAME} references in scalar values (never in
// keys). It returns the node to use in place of n.
func (d *decoder) prepare(n ast.Node, path string) ast.Node {
	switch v := n.(type) {
	case nil:
		return nil
	case *ast.AnchorNode, *ast.AliasNode:
		d.errAt(v.GetToken(), path, errAnchor)
		return ast.Null(v.GetToken())
	case *ast.TagNode:
		v.Value = d.prepare(v.Value, path)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
				d.errAt(mv.Key.GetToken(), path, errAnchor)
				mv.Value = ast.Null(mv.Key.GetToken())
				continue
			}
			mv.Value = d.prepare(mv.Value, joinPath(path, keyString(mv.Key)))
		}
	case *ast.MappingValueNode:
		v.Value = d.prepare(v.Value, joinPath(path, keyString(v.Key)))
	case *ast.SequenceNode:
		for i := range v.Values {
			v.Values[i] = d.prepare(v.Values[i], indexPath(path, i))
		}
	case *ast.LiteralNode:
		if v.Value != nil {
			d.expand(v.Value, path)
		}
	case *ast.StringNode:
		d.expand(v, path)
	}
	return n
}

// expand replaces a string value that is exactly ${NAME} by the value of
// the environment variable NAME.
func (d *decoder) expand(s *ast.StringNode, path string) {
	m := envRef.FindStringSubmatch(s.Value)
	if m == nil {
		if strings.Contains(s.Value, "${") {
			d.errAt(s.GetToken(), path, `only a whole value may be an environment reference: write "${NAME}" alone`)
		}
		return
	}
	val, ok := d.lookupEnv(m[1])
	if !ok {
		d.errAt(s.GetToken(), path, fmt.Sprintf("environment variable %s is not set", m[1]))
		return
	}
	s.Value = val
	d.envPaths[path] = true
}

func keyString(k ast.MapKeyNode) string {
	switch v := k.(type) {
	case *ast.StringNode:
		return v.Value
	case nil:
		return ""
	}
	return k.String()
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	textUnmarsh  = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// isLeaf reports whether t is decoded by goccy/go-yaml as one value rather
// than walked field by field.
func isLeaf(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return true
	}
	return reflect.PointerTo(t).Implements(textUnmarsh) || t == reflect.TypeOf(time.Time{})
}

// yamlFields maps a struct type's YAML keys to field indexes.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = i
		names = append(names, tag)
	}
	return m, names
}

// decode sets v from n, walking structs, pointers to structs and slices of
// structs key by key so that every problem is reported with its path.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	if n == nil {
		return
	}
	if _, ok := n.(*ast.NullNode); ok {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if c, ok := n.(*ast.CommentGroupNode); ok && c != nil {
		return
	}
	t := v.Type()
	switch {
	case t.Kind() == reflect.Pointer && !isLeaf(t.Elem()):
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case t.Kind() == reflect.Struct && !isLeaf(t):
		m, ok := unwrapTag(n).(*ast.MappingNode)
		if !ok {
			d.errAt(n.GetToken(), path, "expected a mapping of keys to values")
			return
		}
		fields, names := yamlFields(t)
		for _, mv := range m.Values {
			key := keyString(mv.Key)
			fp := joinPath(path, key)
			i, ok := fields[key]
			if !ok {
				msg := fmt.Sprintf("unknown key %q", key)
				if s := suggest(key, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				d.errAt(mv.Key.GetToken(), fp, msg)
				continue
			}
			d.setPos(fp, mv.Key.GetToken())
			d.decode(mv.Value, v.Field(i), fp)
		}
	case t.Kind() == reflect.Slice && !isLeaf(t.Elem()):
		s, ok := unwrapTag(n).(*ast.SequenceNode)
		if !ok {
			d.errAt(n.GetToken(), path, "expected a list")
			return
		}
		out := reflect.MakeSlice(t, len(s.Values), len(s.Values))
		for i, e := range s.Values {
			ep := indexPath(path, i)
			if e != nil {
				d.setPos(ep, e.GetToken())
			}
			d.decode(e, out.Index(i), ep)
		}
		v.Set(out)
	default:
		d.recordLeafPositions(n, path)
		if t.Kind() == reflect.Pointer {
			// A pointer to a scalar (routes[].inspect): decode the value
			// and point at it. go-yaml leaves a **T it is handed nil.
			p := reflect.New(t.Elem())
			d.decode(n, p.Elem(), path)
			v.Set(p)
			return
		}
		p := reflect.New(t)
		if err := yaml.NodeToValue(n, p.Interface(), yaml.Strict()); err != nil {
			fe := d.yamlError(path, err)
			fe.Message = leafMessage(t, err)
			if tk := n.GetToken(); fe.Line == 0 && tk != nil && tk.Position != nil {
				fe.Line, fe.Column = tk.Position.Line, tk.Position.Column
			}
			d.errs = append(d.errs, fe)
			return
		}
		v.Set(p.Elem())
	}
}

// recordLeafPositions remembers the positions of list items and mapping
// keys inside a value decoded as a whole (e.g. roles.map.clinicians), so
// that later messages can point at them.
func (d *decoder) recordLeafPositions(n ast.Node, path string) {
	switch v := unwrapTag(n).(type) {
	case *ast.SequenceNode:
		for i, e := range v.Values {
			if e != nil {
				d.setPos(indexPath(path, i), e.GetToken())
				d.recordLeafPositions(e, indexPath(path, i))
			}
		}
	case *ast.MappingNode:
		for _, mv := range v.Values {
			fp := joinPath(path, keyString(mv.Key))
			d.setPos(fp, mv.Key.GetToken())
			d.recordLeafPositions(mv.Value, fp)
		}
	}
}

func unwrapTag(n ast.Node) ast.Node {
	for {
		t, ok := n.(*ast.TagNode)
		if !ok {
			return n
		}
		n = t.Value
	}
}

// leafMessage explains a decoding failure in terms of what was expected.
func leafMessage(t reflect.Type, err error) string {
	want := describeType(t)
	var te interface{ GetMessage() string }
	if errors.As(err, &te) || strings.HasPrefix(err.Error(), "time:") {
		return "expected " + want
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return fmt.Sprintf("expected %s: %s", want, msg)
}

func describeType(t reflect.Type) string {
	switch t {
	case durationType:
		return `a duration such as "30s", "15m" or "12h"`
	case reflect.TypeOf(netip.Prefix{}):
		return `a CIDR prefix such as "10.0.0.0/8"`
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(describeType(t.Elem()))
	case reflect.Map:
		return "a mapping to " + plural(describeType(t.Elem()))
	}
	return t.String()
}

func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "an "), "a ")
	if strings.HasPrefix(s, "list") || strings.HasPrefix(s, "mapping") || strings.HasPrefix(s, "true") {
		return s
	}
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i] + "s" + s[i:]
	}
	return s + "s"
}

// suggest returns the known name closest to key when it is a likely typo.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if dist := levenshtein(key, n); dist < bestD {
			best, bestD = n, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// isPathField reports whether a string field with this YAML key names a
// file or directory on disk.
func isPathField(key string) bool {
	return key == "data_dir" || key == "file" || strings.HasSuffix(key, "_file") || strings.HasSuffix(key, "_dir")
}

// walkStrings calls fn for every string field reachable from v (through
// structs, pointers to structs and slices of structs) with its path, key
// and the struct holding it.
func walkStrings(v reflect.Value, path string, fn func(parent reflect.Value, key, path string, f reflect.Value)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(v.Elem(), path, fn)
		}
	case reflect.Slice:
		if !isLeaf(v.Type().Elem()) {
			for i := range v.Len() {
				walkStrings(v.Index(i), indexPath(path, i), fn)
			}
		}
	case reflect.Struct:
		if isLeaf(v.Type()) {
			return
		}
		_, names := yamlFields(v.Type())
		fields, _ := yamlFields(v.Type())
		for _, key := range names {
			f := v.Field(fields[key])
			fp := joinPath(path, key)
			if f.Kind() == reflect.String {
				fn(v, key, fp, f)
				continue
			}
			walkStrings(f, fp, fn)
		}
	}
}

// resolvePaths makes relative file paths absolute against base.
func (d *decoder) resolvePaths(v reflect.Value, path, base string) {
	walkStrings(v, path, func(_ reflect.Value, key, _ string, f reflect.Value) {
		if isPathField(key) && f.String() != "" && !filepath.IsAbs(f.String()) {
			f.SetString(filepath.Join(base, f.String()))
		}
	})
}

// readSecrets reads every X_file that has a sibling string field X (a
// secret) into X.
// secretFileSuffix marks a setting read from a file: a field "x_file"
// beside a field "x" holds the path of x's secret (readSecrets), and x is
// then a secret (Hash leaves it out).
const secretFileSuffix = "_file"

func (d *decoder) readSecrets(v reflect.Value, path string) {
	walkStrings(v, path, func(parent reflect.Value, key, fp string, f reflect.Value) {
		name, ok := strings.CutSuffix(key, secretFileSuffix)
		if !ok || f.String() == "" {
			return
		}
		fields, _ := yamlFields(parent.Type())
		i, ok := fields[name]
		if !ok || parent.Field(i).Kind() != reflect.String {
			return
		}
		secret := parent.Field(i)
		sibling := joinPath(parentPath(fp), name)
		if secret.String() != "" {
			d.errs = append(d.errs, FieldError{Field: fp, Message: fmt.Sprintf("set either %s or %s, not both", name, key)})
			return
		}
		val, err := ReadSecretFile(f.String())
		if err != nil {
			d.errs = append(d.errs, FieldError{Field: fp, Message: err.Error()})
			return
		}
		secret.SetString(val)
		d.fromFile[sibling] = secretSource{field: fp, path: f.String()}
		// Consumers see exactly one source: the secret itself.
		f.SetString("")
		if pos, ok := d.pos[fp]; ok {
			if _, ok := d.pos[sibling]; !ok {
				d.pos[sibling] = pos // problems with the secret point at its file
			}
		}
		d.envPaths[sibling] = true // not inline: it came from a file
	})
}

// secretSource is the *_file field a secret was read from, and its path.
type secretSource struct{ field, path string }

// atSecretFile reports a problem with a secret that was read from a file
// at the file's field, naming the file: the operator fixes the file, not
// a key the configuration does not have.
func (d *decoder) atSecretFile(e FieldError) FieldError {
	if src, ok := d.fromFile[e.Field]; ok {
		e.Field = src.field
		e.Message = src.path + ": " + e.Message
	}
	return e
}

// ReadSecretFile reads a secret from path by the rule for secret files
// (CheckSecretFile: a regular file of at most MaxSecretFileBytes, not
// empty, that is neither readable nor writable by every user: on Unix,
// mode&0o007 must be 0, "chmod 600" it). One trailing "\n" or "\r\n" is
// trimmed. The error never contains the file's content.
func ReadSecretFile(path string) (string, error) {
	b, err := readSecretBytes(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

// checkReadableFile requires path to be an existing regular file.
func checkReadableFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, unwrapPathError(err))
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Hash is the hex SHA-256 of c's effective settings — defaults applied,
// files read — without its secrets (every field "x" beside an "x_file",
// see secretFileSuffix): nodes that run the same configuration report the
// same hash, and the hash, shown on the admin listener and in the audit
// trail, gives nothing to guess a secret against.
func (c *Config) Hash() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return ""
	}
	var tree any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return ""
	}
	b, _ = json.Marshal(withoutSecrets(tree))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// withoutSecrets drops from every mapping of v each key whose sibling
// key+secretFileSuffix is a key of the same mapping.
func withoutSecrets(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if _, ok := t[k+secretFileSuffix]; ok {
				continue
			}
			out[k] = withoutSecrets(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = withoutSecrets(e)
		}
		return out
	}
	return v
}
