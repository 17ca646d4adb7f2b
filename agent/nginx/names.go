package nginx

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalid marks input that Apply refuses before anything is written:
// a bad name, a bad port, a site on an unknown bench, a duplicate.
var ErrInvalid = errors.New("invalid nginx input")

var (
	benchPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	labelPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// These patterns are the only thing standing between a name and the nginx
// configuration it is pasted into: no quote, semicolon, brace, space, slash,
// dollar or upper-case letter can get through them.

func validateBench(name string) error {
	if !benchPattern.MatchString(name) {
		return fmt.Errorf("%w: bench name %q: want lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters", ErrInvalid, name)
	}
	return nil
}

func validateSite(name string) error {
	if name == "" {
		return fmt.Errorf("%w: site name %q: empty", ErrInvalid, name)
	}
	if len(name) > 253 {
		return fmt.Errorf("%w: site name %q: %d characters, at most 253", ErrInvalid, name, len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) > 63 {
			return fmt.Errorf("%w: site name %q: label %q is longer than 63 characters", ErrInvalid, name, label)
		}
		if !labelPattern.MatchString(label) {
			return fmt.Errorf("%w: site name %q: label %q: want lower-case letters, digits and inner '-'", ErrInvalid, name, label)
		}
	}
	return nil
}

// validate checks every bench and site and returns every problem at once.
func validate(benches []Bench, sites []Site) error {
	var errs []error
	ports := make(map[string]bool, len(benches))
	for _, b := range benches {
		if err := validateBench(b.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := ports[b.Name]; dup {
			errs = append(errs, fmt.Errorf("%w: bench %q listed twice", ErrInvalid, b.Name))
		}
		ports[b.Name] = true
		if b.Port < 1 || b.Port > 65535 {
			errs = append(errs, fmt.Errorf("%w: bench %q: port %d is not in 1-65535", ErrInvalid, b.Name, b.Port))
		}
	}
	seen := make(map[string]string, len(sites))
	for _, s := range sites {
		if err := validateSite(s.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[s.Name]; dup {
			errs = append(errs, fmt.Errorf("%w: site %q listed twice (benches %q and %q)", ErrInvalid, s.Name, prev, s.Bench))
			continue
		}
		seen[s.Name] = s.Bench
		if !ports[s.Bench] {
			errs = append(errs, fmt.Errorf("%w: site %q: bench %q is not in the list of benches", ErrInvalid, s.Name, s.Bench))
		}
	}
	return errors.Join(errs...)
}
