package main

import "strings"

// cmdArgs is a parsed command line: Frappe's commands take options before,
// after and between positional arguments, which the flag package does not.
type cmdArgs struct {
	pos   []string
	vals  map[string]string
	bools map[string]bool
}

// argSpec names a command's options, without the leading "--". ignored are
// Frappe options accepted for compatibility and without effect here (the
// agent creates databases and users itself, so root credentials are unused).
type argSpec struct {
	valued       []string
	bools        []string
	ignored      []string // valued options
	ignoredBools []string
}

func parseArgs(cmd string, args []string, spec argSpec) (*cmdArgs, error) {
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	a := &cmdArgs{vals: map[string]string{}, bools: map[string]bool{}}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "--") || arg == "--" {
			a.pos = append(a.pos, arg)
			continue
		}
		name, val, hasVal := strings.Cut(arg[2:], "=")
		switch {
		case in(spec.valued, name) || in(spec.ignored, name):
			if !hasVal {
				if i+1 >= len(args) {
					return nil, usagef("%s: option --%s needs a value", cmd, name)
				}
				i++
				val = args[i]
			}
			if in(spec.valued, name) {
				a.vals[name] = val
			}
		case in(spec.bools, name) || in(spec.ignoredBools, name):
			if hasVal {
				return nil, usagef("%s: option --%s takes no value", cmd, name)
			}
			a.bools[name] = true
		default:
			return nil, usagef("%s: unknown option --%s", cmd, name)
		}
	}
	return a, nil
}
