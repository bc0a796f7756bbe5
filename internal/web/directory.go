package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/vigil-safety/vigil/internal/visit"
)

// Directory is what the directory API asks of whoever keeps schools and officers.
// Errors for the caller are *visit.Error: Invalid (400), Conflict (409: provisioned
// by the configuration file, a phone already taken, an officer on a visit),
// NotFound (404).
type Directory interface {
	Officers(ctx context.Context) ([]visit.Officer, error)
	// PutOfficer creates or replaces an officer; with keepDuress the officer keeps
	// the duress code they had. It returns the officer saved and whether it is new.
	PutOfficer(ctx context.Context, by string, o visit.Officer, keepDuress bool) (visit.Officer, bool, error)
	DeleteOfficer(ctx context.Context, by, id string) error
	Schools(ctx context.Context) ([]visit.School, error)
	PutSchool(ctx context.Context, by string, sc visit.School) (visit.School, bool, error)
}

// directoryRoutes adds the directory API (admin tokens only) when a Directory is set.
func (s *Server) directoryRoutes(mux *http.ServeMux) {
	if s.o.Directory == nil {
		return
	}
	mux.HandleFunc("GET /api/v1/officers", s.api(RoleAdmin, s.listOfficers))
	mux.HandleFunc("PUT /api/v1/officers/{id}", s.api(RoleAdmin, s.putOfficer))
	mux.HandleFunc("DELETE /api/v1/officers/{id}", s.api(RoleAdmin, s.deleteOfficer))
	mux.HandleFunc("GET /api/v1/schools", s.api(RoleAdmin, s.listSchools))
	mux.HandleFunc("PUT /api/v1/schools/{id}", s.api(RoleAdmin, s.putSchool))
}

// consoleRoute mounts the office console on every path nothing else serves.
func (s *Server) consoleRoute(mux *http.ServeMux) {
	if s.o.Console != nil {
		mux.Handle("/", s.o.Console)
	}
}

// officerJSON is an officer as the API shows it: the duress code is write-only, so
// only whether one is set.
type officerJSON struct {
	visit.Officer
	DuressCodeSet bool `json:"duress_code_set"`
}

func showOfficer(o visit.Officer) officerJSON {
	set := o.DuressCode != ""
	o.DuressCode = ""
	return officerJSON{Officer: o, DuressCodeSet: set}
}

func (s *Server) listOfficers(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	offs, err := s.o.Directory.Officers(r.Context())
	if err != nil {
		return nil, 0, err
	}
	out := make([]officerJSON, 0, len(offs))
	for _, o := range offs {
		out = append(out, showOfficer(o))
	}
	return map[string]any{"officers": out}, http.StatusOK, nil
}

type officerBody struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Phone   string `json:"phone"`
	School  string `json:"school"`
	Vehicle *struct {
		Make             string `json:"make"`
		Model            string `json:"model"`
		Colour           string `json:"colour"`
		Registration     string `json:"registration"`
		InsuranceExpires string `json:"insurance_expires"`
	} `json:"vehicle"`
	// DuressCode: absent keeps the officer's code, "" removes it, digits set it.
	DuressCode *string `json:"duress_code"`
}

func (s *Server) putOfficer(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	var b officerBody
	if err := decode(r, &b); err != nil {
		return nil, 0, err
	}
	id := r.PathValue("id")
	if b.ID != "" && b.ID != id {
		return nil, 0, badRequest(fmt.Sprintf("id: %q in the body is not the one in the path (%q)", b.ID, id))
	}
	o := visit.Officer{ID: id, Name: b.Name, Phone: b.Phone, School: b.School}
	if b.Vehicle != nil {
		o.Vehicle = &visit.Vehicle{Make: b.Vehicle.Make, Model: b.Vehicle.Model, Colour: b.Vehicle.Colour,
			Registration: b.Vehicle.Registration, InsuranceExpires: b.Vehicle.InsuranceExpires}
	}
	if b.DuressCode != nil {
		o.DuressCode = *b.DuressCode
	}
	saved, created, err := s.o.Directory.PutOfficer(r.Context(), who, o, b.DuressCode == nil)
	if err != nil {
		return nil, 0, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return showOfficer(saved), status, nil
}

func (s *Server) deleteOfficer(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	id := r.PathValue("id")
	if err := s.o.Directory.DeleteOfficer(r.Context(), who, id); err != nil {
		return nil, 0, err
	}
	return map[string]string{"deleted": id}, http.StatusOK, nil
}

func (s *Server) listSchools(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	scs, err := s.o.Directory.Schools(r.Context())
	if err != nil {
		return nil, 0, err
	}
	if scs == nil {
		scs = []visit.School{}
	}
	return map[string]any{"schools": scs}, http.StatusOK, nil
}

type schoolBody struct {
	ID       string                     `json:"id"`
	Name     string                     `json:"name"`
	TimeZone string                     `json:"timezone"`
	Contacts map[string][]visit.Contact `json:"contacts"`
}

func (s *Server) putSchool(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	var b schoolBody
	if err := decode(r, &b); err != nil {
		return nil, 0, err
	}
	id := r.PathValue("id")
	if b.ID != "" && b.ID != id {
		return nil, 0, badRequest(fmt.Sprintf("id: %q in the body is not the one in the path (%q)", b.ID, id))
	}
	if strings.TrimSpace(b.Name) == "" {
		return nil, 0, badRequest("name: is required")
	}
	saved, created, err := s.o.Directory.PutSchool(r.Context(), who, visit.School{ID: id, Name: b.Name, TimeZone: b.TimeZone, Contacts: b.Contacts})
	if err != nil {
		return nil, 0, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return saved, status, nil
}
