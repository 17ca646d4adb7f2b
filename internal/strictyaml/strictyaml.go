// Package strictyaml decodes configuration files strictly: unknown keys are
// errors, and every problem names its line and its field.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DecodeFile decodes the YAML file at path over out, which holds the defaults.
// An empty file leaves out as it is.
func DecodeFile(path string, out any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, nameFields(data, err))
	}
	return nil
}

var errLine = regexp.MustCompile(`^line (\d+): `)

// nameFields rewrites yaml's "line N: problem" messages as
// "line N: field.path: problem", so that every problem names its field.
func nameFields(data []byte, err error) error {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	fields := map[int]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if prefix != "" {
					key = prefix + "." + key
				}
				fields[n.Content[i].Line] = key
				walk(n.Content[i+1], key)
			}
		}
	}
	walk(&root, "")
	msgs := make([]string, 0, len(typeErr.Errors))
	for _, msg := range typeErr.Errors {
		if m := errLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			if field, ok := fields[line]; ok {
				if strings.Contains(msg, "field "+lastPart(field)+" not found") {
					msg = m[0] + field + ": unknown key"
				} else {
					msg = m[0] + field + ": " + msg[len(m[0]):]
				}
			}
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func lastPart(field string) string {
	return field[strings.LastIndexByte(field, '.')+1:]
}
