package kernel

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ModuleSet knows every loadable module of a kernel: where its file is,
// what it depends on, and which aliases name it.
type ModuleSet struct {
	dir     string
	paths   map[string]string   // normalised name -> path relative to dir
	deps    map[string][]string // normalised name -> dependency names
	builtin map[string]bool
	aliases map[string][]string // alias -> module names (exact aliases only)
}

// normalise folds a module name the way the kernel does: '-' and '_' are one.
func normalise(name string) string {
	name = strings.TrimSuffix(filepath.Base(name), ".ko")
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		name = strings.TrimSuffix(name, ".ko"+ext)
	}
	return strings.ReplaceAll(name, "-", "_")
}

// Modules indexes the kernel's module tree. It trusts modules.dep when depmod
// has written one and reads each module's .modinfo otherwise (a bare .deb).
func (k *Kernel) Modules() (*ModuleSet, error) {
	s := &ModuleSet{dir: k.ModulesDir, paths: map[string]string{}, deps: map[string][]string{},
		builtin: map[string]bool{}, aliases: map[string][]string{}}
	if b, err := os.ReadFile(filepath.Join(k.ModulesDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			s.builtin[normalise(l)] = true
		}
	}
	if err := s.readDep(); err != nil {
		if !os.IsNotExist(err) {
			return nil, err
		}
		if err := s.scanModinfo(); err != nil {
			return nil, err
		}
	}
	if len(s.paths) == 0 {
		return nil, fmt.Errorf("kernel %s: no modules under %s", k.Version, k.ModulesDir)
	}
	if err := s.readAliases(); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return s, nil
}

func (s *ModuleSet) readDep() error {
	f, err := os.Open(filepath.Join(s.dir, "modules.dep"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return fmt.Errorf("modules.dep line %d: no ':' after the module path", n)
		}
		name := normalise(mod)
		s.paths[name] = mod
		for _, d := range strings.Fields(rest) {
			s.deps[name] = append(s.deps[name], normalise(d))
		}
	}
	return sc.Err()
}

// scanModinfo builds the index from the modules themselves, as depmod would.
func (s *ModuleSet) scanModinfo() error {
	return filepath.WalkDir(filepath.Join(s.dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(s.dir, p)
		name := normalise(p)
		s.paths[name] = filepath.ToSlash(rel)
		info, err := modinfo(p)
		if err != nil {
			return err
		}
		for _, v := range info["depends"] {
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					s.deps[name] = append(s.deps[name], normalise(d))
				}
			}
		}
		return nil
	})
}

func (s *ModuleSet) readAliases() error {
	f, err := os.Open(filepath.Join(s.dir, "modules.alias"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 3 && fs[0] == "alias" && !strings.ContainsAny(fs[1], "*?[") {
			s.aliases[fs[1]] = append(s.aliases[fs[1]], normalise(fs[2]))
		}
	}
	return sc.Err()
}

// modinfo reads the key=value pairs of a module's .modinfo section.
func modinfo(path string) (map[string][]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return map[string][]string{}, nil
	}
	b, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: .modinfo: %w", path, err)
	}
	out := map[string][]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = append(out[k], v)
		}
	}
	return out, nil
}

// Resolve returns the module files (relative to the module directory) that
// loading names needs, each after everything it depends on. Names that are
// built into the kernel are satisfied already; unknown names are returned
// in missing so the caller can warn (a custom kernel may build them in).
func (s *ModuleSet) Resolve(names []string) (files []string, missing []string, err error) {
	seen := map[string]bool{}
	var visit func(name string, stack []string) error
	visit = func(name string, stack []string) error {
		if seen[name] || s.builtin[name] {
			return nil
		}
		for _, st := range stack {
			if st == name {
				return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(stack, " -> "), name)
			}
		}
		p, ok := s.paths[name]
		if !ok {
			missing = append(missing, name)
			seen[name] = true
			return nil
		}
		stack = append(stack, name)
		pre, err := s.softPre(p)
		if err != nil {
			return err
		}
		for _, d := range append(pre, s.deps[name]...) {
			if err := visit(d, stack); err != nil {
				return err
			}
		}
		seen[name] = true
		files = append(files, p)
		return nil
	}
	for _, n := range names {
		if err := visit(normalise(n), nil); err != nil {
			return nil, nil, err
		}
	}
	return files, missing, nil
}

// softPre lists the modules a module wants loaded before it ("softdep pre:"),
// with aliases such as crypto-crc32c resolved to the modules providing them.
func (s *ModuleSet) softPre(rel string) ([]string, error) {
	info, err := modinfo(filepath.Join(s.dir, rel))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range info["softdep"] {
		fields := strings.Fields(v)
		pre := false
		for _, f := range fields {
			switch f {
			case "pre:":
				pre = true
				continue
			case "post:":
				pre = false
				continue
			}
			if !pre {
				continue
			}
			if _, ok := s.paths[normalise(f)]; ok {
				out = append(out, normalise(f))
				continue
			}
			out = append(out, s.aliases[f]...)
		}
	}
	return out, nil
}

// Dir is the module directory the relative paths of Resolve are under.
func (s *ModuleSet) Dir() string { return s.dir }
