package nginx

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// commonFile is the per-generation file that is not a bench. Bench names start
// with a letter or digit, so no bench file can be called this.
const commonFile = "_hybrid.conf"

// generationPath is the location the probe server answers with the
// generation of the configuration nginx is actually running.
const generationPath = "/__hybrid_generation"

var benchTemplate = template.Must(template.New("bench").Parse(`# Written by hybrid-agent (generation {{.Generation}}); do not edit.
upstream hybrid-bench-{{.Name}} {
    server 127.0.0.1:{{.Port}};
    keepalive 16;
}
{{- if .Sites}}

server {
    listen {{.Listen}};
    server_name{{range .Sites}} {{.}}{{end}};

    client_max_body_size {{.ClientMaxBodySize}};
{{- range .AccessLogs}}
    access_log {{.}};
{{- end}}
{{- if .Extra}}
    {{.Extra}}
{{- end}}

    location / {
        proxy_pass http://hybrid-bench-{{.Name}};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $hybrid_connection_upgrade;
        proxy_connect_timeout 10s;
        proxy_send_timeout 300s;
        proxy_read_timeout 300s;
    }
}
{{- end}}
`))

type benchData struct {
	Generation        uint64
	Name              string
	Port              int
	Listen            string
	Sites             []string
	ClientMaxBodySize string
	AccessLogs        []string
	Extra             string
}

// LogFormat is the name of the log_format of the lines sent to
// Options.AccessLogSocket. Its fields, separated by one space, are fixed
// (exporters/sitelog parses them): the format's version, $status,
// $request_time, $connection, $connection_requests, $server_protocol and
// last $host, the one field a client chooses (nginx escapes quotes,
// backslashes and control bytes in it).
const LogFormat = "hybrid_sites"

// accessLogs are the access_log parameters of a site server: the lines for
// the agent, and for an owned nginx its file too, which a server-level
// access_log would otherwise replace.
func (m *Manager) accessLogs() []string {
	if m.opts.AccessLogSocket == "" {
		return nil
	}
	logs := []string{"syslog:server=unix:" + m.opts.AccessLogSocket + ",nohostname,tag=hybrid " + LogFormat}
	if m.owned() {
		logs = append(logs, m.path("logs", "access.log"))
	}
	return logs
}

// renderBenches returns one snippet per bench, keyed by file name. Names must
// have been validated.
func (m *Manager) renderBenches(gen uint64, benches []Bench, sites []Site) (map[string][]byte, error) {
	byBench := make(map[string][]string, len(benches))
	for _, s := range sites {
		byBench[s.Bench] = append(byBench[s.Bench], s.Name)
	}
	files := make(map[string][]byte, len(benches)+1)
	for _, b := range benches {
		names := byBench[b.Name]
		slices.Sort(names)
		d := benchData{
			Generation:        gen,
			Name:              b.Name,
			Port:              b.Port,
			Listen:            m.opts.Listen,
			Sites:             names,
			ClientMaxBodySize: m.opts.ClientMaxBodySize,
			AccessLogs:        m.accessLogs(),
		}
		if m.extraDirectives != nil {
			d.Extra = m.extraDirectives(b.Name)
		}
		var buf bytes.Buffer
		if err := benchTemplate.Execute(&buf, d); err != nil {
			return nil, fmt.Errorf("render bench %s: %w", b.Name, err)
		}
		files[b.Name+".conf"] = buf.Bytes()
	}
	common, err := m.renderCommon(gen)
	if err != nil {
		return nil, err
	}
	files[commonFile] = common
	return files, nil
}

var commonTemplate = template.Must(template.New("common").Parse(`# Written by hybrid-agent (generation {{.Generation}}); do not edit.
map $http_upgrade $hybrid_connection_upgrade {
    default upgrade;
    ''      '';
}
{{- if .AccessLogs}}

# Each site request's line for the agent, which counts requests by site and
# status code: the fields are fixed, and parsed by the agent (exporters/sitelog).
log_format {{.LogFormat}} 'v1 $status $request_time $connection $connection_requests $server_protocol $host';
{{- end}}

# The agent reads this after every reload: seeing its own generation here is
# the proof that nginx runs this configuration, not only that it parses; the
# worker's pid leads the agent to the workers of the configuration before.
server {
    listen {{.ProbeListen}};
    server_name _;
    access_log off;

    location = {{.GenerationPath}} {
        default_type text/plain;
        return 200 "{{.Generation}} $pid\n";
    }
    location / {
        return 404;
    }
}
{{- if .Owned}}

# Hosts that are no bench's site.
server {
    listen {{.Listen}} default_server;
    server_name _;
{{- range .AccessLogs}}
    access_log {{.}};
{{- end}}
    return 404;
}
{{- end}}
`))

func (m *Manager) renderCommon(gen uint64) ([]byte, error) {
	var buf bytes.Buffer
	err := commonTemplate.Execute(&buf, map[string]any{
		"Generation":     gen,
		"ProbeListen":    m.opts.ProbeListen,
		"GenerationPath": generationPath,
		"Owned":          m.owned(),
		"Listen":         m.opts.Listen,
		"AccessLogs":     m.accessLogs(),
		"LogFormat":      LogFormat,
	})
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", commonFile, err)
	}
	return buf.Bytes(), nil
}

var mainTemplate = template.Must(template.New("main").Parse(`# Written by hybrid-agent; do not edit. The agent runs nginx with this file
# when it owns nginx (no system nginx configured).
{{- if .User}}
user {{.User}};
{{- end}}
daemon off;
master_process on;
worker_processes auto;
pid {{.Dir}}/run/nginx.pid;
error_log {{.Dir}}/logs/error.log;

events {
    worker_connections 1024;
}

http {
    default_type application/octet-stream;
    access_log {{.Dir}}/logs/access.log;
    server_tokens off;
    sendfile on;
    keepalive_timeout 65s;

    client_body_temp_path {{.Dir}}/tmp/client_body;
    proxy_temp_path {{.Dir}}/tmp/proxy;
    fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
    scgi_temp_path {{.Dir}}/tmp/scgi;

    include {{.Dir}}/benches/*.conf;
}
`))

func (m *Manager) renderMain() ([]byte, error) {
	var buf bytes.Buffer
	err := mainTemplate.Execute(&buf, map[string]any{"Dir": m.opts.Dir, "User": m.opts.User})
	if err != nil {
		return nil, fmt.Errorf("render nginx.conf: %w", err)
	}
	return buf.Bytes(), nil
}

var (
	upstreamLine   = regexp.MustCompile(`(?m)^    server 127\.0\.0\.1:([0-9]+);$`)
	serverNameLine = regexp.MustCompile(`(?m)^    server_name ([^;]*);$`)
)

// readRoutes reads the benches and sites back from a generation's snippets
// as benchTemplate writes them (and as every earlier version did).
func readRoutes(dir string) ([]Bench, []Site, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, nil, err
	}
	var benches []Bench
	var sites []Site
	for _, path := range matches {
		name := strings.TrimSuffix(filepath.Base(path), ".conf")
		if filepath.Base(path) == commonFile {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		port := upstreamLine.FindSubmatch(data)
		if port == nil {
			return nil, nil, fmt.Errorf("%s: no upstream server line", path)
		}
		n, err := strconv.Atoi(string(port[1]))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: port: %w", path, err)
		}
		benches = append(benches, Bench{Name: name, Port: n})
		if names := serverNameLine.FindSubmatch(data); names != nil {
			for _, site := range strings.Fields(string(names[1])) {
				sites = append(sites, Site{Name: site, Bench: name})
			}
		}
	}
	return benches, sites, nil
}
