package alertmanagertest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

const minimalConfig = `
route:
  receiver: nobody
receivers:
  - name: nobody
`

func TestInstance_StopThenStart_ServesOnSamePort(t *testing.T) {
	am := Start(t, []byte(minimalConfig))
	url := am.URL()
	requireReady(t, url, true)

	am.Stop()
	requireReady(t, url, false)

	am.Start()
	require.Equal(t, url, am.URL())
	requireReady(t, url, true)
}

func TestCheckConfig_Valid_Passes_Invalid_Fails(t *testing.T) {
	out, err := CheckConfig(t, []byte(minimalConfig))
	require.NoError(t, err, out)
	require.Contains(t, out, "SUCCESS")

	out, err = CheckConfig(t, []byte("route:\n  receiver: missing\nreceivers:\n  - name: nobody\n"))
	require.Error(t, err)
	require.Contains(t, out, `undefined receiver "missing"`)
}

func requireReady(t *testing.T, url string, want bool) {
	t.Helper()
	resp, err := http.Get(url + "/-/ready")
	if !want {
		require.Error(t, err, "alertmanager still answers")
		return
	}
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
