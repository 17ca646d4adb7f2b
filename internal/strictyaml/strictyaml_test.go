package strictyaml

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type inner struct {
	Timeout time.Duration `yaml:"timeout"`
	Names   []string      `yaml:"names"`
}

type config struct {
	Root  string `yaml:"root"`
	Inner inner  `yaml:"inner"`
}

func write(t *testing.T, content string) string {
	path := filepath.Join(t.TempDir(), "c.yml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestDecodeFile_OverDefaults(t *testing.T) {
	c := config{Root: "/default", Inner: inner{Timeout: time.Second}}
	require.NoError(t, DecodeFile(write(t, "inner:\n  timeout: 5s\n"), &c))
	require.Equal(t, "/default", c.Root, "unset keys keep their default")
	require.Equal(t, 5*time.Second, c.Inner.Timeout)
}

func TestDecodeFile_EveryProblemNamesLineAndField(t *testing.T) {
	var c config
	err := DecodeFile(write(t, "root: /x\ninner:\n  timeout: soon\n  nmes: [a]\n  names: 3\n"), &c)
	require.Error(t, err)
	for _, want := range []string{
		"line 3: inner.timeout: cannot unmarshal",
		"line 4: inner.nmes: unknown key",
		"line 5: inner.names: cannot unmarshal",
	} {
		require.Contains(t, err.Error(), want)
	}
}

func TestDecodeFile_SyntaxErrorAndMissingFile(t *testing.T) {
	var c config
	require.ErrorContains(t, DecodeFile(write(t, "root: [\n"), &c), "c.yml")
	require.ErrorContains(t, DecodeFile(filepath.Join(t.TempDir(), "none.yml"), &c), "none.yml")
}
