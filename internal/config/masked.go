package config

import (
	"bytes"
	"cmp"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// mask replaces a secret that is set.
const mask = "****"

// Masked returns the effective configuration as YAML, keys as in SPEC §3 and in the
// same order, with secrets masked: twilio.auth_token, every api token, every
// duress code, redis.password, redis.sentinel.password, the password of
// redis.url, and the path and query of monitoring.heartbeat_url. token_sha256 is shown: it is a hash.
// It is what `vigil check-config` prints.
func (c *Config) Masked() string {
	m := *c
	m.Twilio.AuthToken = masked(m.Twilio.AuthToken)
	m.Redis.Password = masked(m.Redis.Password)
	m.Redis.Sentinel.Password = masked(m.Redis.Sentinel.Password)
	if u, err := url.Parse(m.Redis.URL); err == nil && m.Redis.URL != "" {
		m.Redis.URL = u.Redacted()
	}
	m.Monitoring.HeartbeatURL = maskedURL(m.Monitoring.HeartbeatURL)
	m.API.Tokens = slices.Clone(m.API.Tokens)
	for i := range m.API.Tokens {
		m.API.Tokens[i].Token = masked(m.API.Tokens[i].Token)
	}
	m.Directory.Officers = slices.Clone(m.Directory.Officers)
	for i := range m.Directory.Officers {
		m.Directory.Officers[i].DuressCode = masked(m.Directory.Officers[i].DuressCode)
	}

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(yamlNode(reflect.ValueOf(m))); err != nil {
		return fmt.Sprintf("# cannot write the configuration as YAML: %v\n", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Sprintf("# cannot write the configuration as YAML: %v\n", err)
	}
	return b.String()
}

// maskedURL keeps the scheme and host of a URL whose path may be its secret (a
// dead-man's-switch ping URL, https://hc-ping.com/<uuid>), and masks the rest.
func maskedURL(raw string) string {
	u, err := url.Parse(raw)
	if raw == "" || err != nil {
		return masked(raw)
	}
	if u.Path == "" && u.RawQuery == "" && u.User == nil {
		return raw
	}
	return u.Scheme + "://" + u.Host + "/" + mask
}

func masked(secret string) string {
	if secret == "" {
		return ""
	}
	return mask
}

// yamlNode writes v as YAML, naming struct fields by their mapstructure tags (the
// keys of the file) in declaration order, and durations as in the file (10m, 1h30m).
// It returns nil for a nil pointer, which is then left out.
func yamlNode(v reflect.Value) *yaml.Node {
	if v.Type() == durationType {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: formatDuration(time.Duration(v.Int()))}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return yamlNode(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := range v.NumField() {
			key := v.Type().Field(i).Tag.Get("mapstructure")
			if key == "" || key == "-" {
				continue
			}
			if child := yamlNode(v.Field(i)); child != nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, child)
			}
		}
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if child := yamlNode(v.MapIndex(k)); child != nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.String()}, child)
			}
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if k := v.Type().Elem().Kind(); k != reflect.Struct && k != reflect.Pointer {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			if child := yamlNode(v.Index(i)); child != nil {
				n.Content = append(n.Content, child)
			}
		}
		return n
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v.Interface())}
	}
	return &n
}
