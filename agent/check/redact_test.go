package check

import "testing"

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://proxy.corp/go", "https://proxy.corp/go"},
		{"https://ci:s3cret@proxy.corp/go,direct", "https://ci:***@proxy.corp/go,direct"},
		{"https://a:b@one/x|https://c:d@two/y", "https://a:***@one/x|https://c:***@two/y"},
		{"off", "off"},
		{"GOPROXY=https://u:p%40ss@h needs go1.27", "GOPROXY=https://u:***@h needs go1.27"},
	}
	for _, tt := range tests {
		if got := RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if HasURLPassword(tt.in) != (tt.in != tt.want) {
			t.Errorf("HasURLPassword(%q) = %v", tt.in, HasURLPassword(tt.in))
		}
	}
}
