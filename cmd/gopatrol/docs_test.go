package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docs/checks.md documents every check of `gopatrol check --list`, in the
// same order, with the same title, and a table of how each one fails.
func TestChecksDocInStepWithList(t *testing.T) {
	stdout, stderr, code := gopatrol(t, nil, "check", "--list", "-o", "json")
	if code != 0 {
		t.Fatalf("--list: exit %d %s", code, stderr)
	}
	var list []struct{ ID, Title, Seed string }
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/checks.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("(?m)^## `([^`]+)`: (.+)$")
	sections := heading.FindAllStringSubmatchIndex(string(doc), -1)
	var docIDs []string
	for i, m := range sections {
		id, title := string(doc[m[2]:m[3]]), string(doc[m[4]:m[5]])
		docIDs = append(docIDs, id)
		end := len(doc)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		body := string(doc[m[1]:end])
		j := slices.IndexFunc(list, func(e struct{ ID, Title, Seed string }) bool { return e.ID == id })
		if j < 0 {
			t.Errorf("docs/checks.md documents %s, which gopatrol check --list does not have", id)
			continue
		}
		if title != list[j].Title {
			t.Errorf("%s: docs title %q, --list title %q", id, title, list[j].Title)
		}
		if !strings.Contains(body, "Seed "+list[j].Seed) {
			t.Errorf("%s: docs do not cite seed section %s", id, list[j].Seed)
		}
		if !strings.Contains(body, "| status | when | fix |") {
			t.Errorf("%s: docs have no table of how it fails", id)
		}
	}
	var listIDs []string
	for _, e := range list {
		listIDs = append(listIDs, e.ID)
	}
	if !slices.Equal(docIDs, listIDs) {
		t.Errorf("docs/checks.md sections %v\n--list                 %v", docIDs, listIDs)
	}
}
