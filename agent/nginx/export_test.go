package nginx

// SetExtraDirectives makes every bench's server block carry the text f
// returns, to get an invalid snippet past name validation.
func SetExtraDirectives(m *Manager, f func(bench string) string) { m.extraDirectives = f }
