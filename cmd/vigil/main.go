// Command vigil is the Vigil lone-worker safety daemon and its tools:
//
//	vigil serve [--config FILE]
//	vigil check-config --config FILE
//	vigil sms [--config FILE] [--url BASE_URL] --from NUMBER TEXT
//	vigil version
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // Europe/London in a bare container image

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/sms"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitConfig
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "sms":
		return sendSMS(args[1:], stdout, stderr)
	case "user":
		return userCmd(args[1:], os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "vigil", version)
		return exitOK
	case "help", "--help", "-h":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n", args[0])
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  vigil serve [--config FILE]                                  run the daemon
  vigil check-config --config FILE                             validate and print the configuration
  vigil sms [--config FILE] [--url BASE_URL] --from NUMBER TEXT  send an SMS to a running daemon as Twilio would
  vigil user add|list|delete --config FILE ...                   manage office console users (passwords read from stdin)
  vigil version
`)
}

func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "vigil: configuration %s is not valid:\n%v\n", orDefault(path), err)
		return nil, false
	}
	return cfg, true
}

func orDefault(path string) string {
	if path == "" {
		return "(defaults and environment)"
	}
	return path
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitConfig
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	app.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a, err := app.New(ctx, cfg, app.Options{Log: log, Console: stdout, Version: version})
	if err != nil {
		log.Error("vigil could not start", "err", err)
		return exitFail
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				next, err := config.Load(*path, os.Environ())
				if err != nil {
					log.Error("SIGHUP: configuration not valid; keeping the directory as it was", "err", err)
					continue
				}
				if err := a.Reload(ctx, next); err != nil {
					log.Error("SIGHUP: reload failed", "err", err)
				}
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		log.Error("vigil stopped with an error", "err", err)
		return exitFail
	}
	log.Info("vigil stopped")
	return exitOK
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *path == "" {
		fmt.Fprintln(stderr, "vigil check-config: --config FILE is required")
		return exitConfig
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitConfig
	}
	fmt.Fprint(stdout, cfg.Masked())
	fmt.Fprintln(stderr, "configuration is valid")
	return exitOK
}

func sendSMS(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML): auth token, public_url, listen")
	base := fs.String("url", "", "base URL of the running daemon (default: http:// + listen)")
	from := fs.String("from", "", "the sender's phone number")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	text := strings.Join(fs.Args(), " ")
	if *from == "" || strings.TrimSpace(text) == "" {
		fmt.Fprintln(stderr, "vigil sms: --from NUMBER and TEXT are required")
		return exitConfig
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitConfig
	}
	phone, err := config.NormalizePhone(*from, cfg.DefaultRegion)
	if err != nil {
		fmt.Fprintf(stderr, "vigil sms: --from: %v\n", err)
		return exitConfig
	}
	target := *base
	if target == "" {
		target = "http://" + cfg.Listen
	}
	target = strings.TrimRight(target, "/")
	sid := make([]byte, 16)
	_, _ = rand.Read(sid)
	form := url.Values{
		"From": {phone}, "To": {cfg.Twilio.From}, "Body": {text},
		"MessageSid": {"SM" + hex.EncodeToString(sid)}, "AccountSid": {cfg.Twilio.AccountSID},
	}
	req, err := http.NewRequest(http.MethodPost, target+"/twilio/sms", strings.NewReader(form.Encode()))
	if err != nil {
		fmt.Fprintf(stderr, "vigil sms: %v\n", err)
		return exitConfig
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(cfg.Twilio.AuthToken, cfg.PublicURL+"/twilio/sms", form))
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "vigil sms: is the daemon running at %s? %v\n", target, err)
		return exitFail
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "vigil sms: the daemon answered %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return exitFail
	}
	reply, err := replyText(body)
	if err != nil {
		fmt.Fprintf(stderr, "vigil sms: unreadable answer: %v\n", err)
		return exitFail
	}
	if reply == "" {
		fmt.Fprintln(stdout, "(no reply)")
	} else {
		fmt.Fprintln(stdout, reply)
	}
	return exitOK
}

// replyText reads the <Message> texts of a TwiML answer.
func replyText(b []byte) (string, error) {
	var r struct {
		Messages []string `xml:"Message"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		return "", err
	}
	return strings.Join(r.Messages, "\n"), nil
}
