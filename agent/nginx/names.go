package nginx

import (
	"errors"
	"fmt"

	"github.com/hybridsuite/hybrid/agent/names"
)

// ErrInvalid marks input that Apply refuses before anything is written:
// a bad name, a bad port, a site on an unknown bench, a duplicate.
var ErrInvalid = errors.New("invalid nginx input")

// Bench and site names are checked by agent/names, the one set of name rules
// every layer calls: they are the only thing standing between a name and the
// nginx configuration it is pasted into, and no quote, semicolon, brace,
// space, slash, dollar or upper-case letter gets through them.

func validateBench(name string) error {
	if err := names.Bench(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func validateSite(name string) error {
	if err := names.Site(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
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
