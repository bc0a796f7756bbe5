package config

import (
	"github.com/vigil-safety/vigil/internal/visit"
)

// Schools returns the provisioned schools as domain values, marked Provisioned, in
// file order. A school without a timezone gets the config's. Call it on a validated
// Config, whose phone numbers are E.164.
func (c *Config) Schools() []visit.School {
	out := make([]visit.School, 0, len(c.Directory.Schools))
	for _, s := range c.Directory.Schools {
		tz := s.Timezone
		if tz == "" {
			tz = c.Timezone
		}
		contacts := make(map[string][]visit.Contact, len(s.Contacts))
		for list, entries := range s.Contacts {
			cs := make([]visit.Contact, 0, len(entries))
			for _, ct := range entries {
				cs = append(cs, visit.Contact{Name: ct.Name, Phone: ct.Phone})
			}
			contacts[list] = cs
		}
		out = append(out, visit.School{
			ID:          s.ID,
			Name:        s.Name,
			TimeZone:    tz,
			Contacts:    contacts,
			Provisioned: true,
		})
	}
	return out
}

// Officers returns the provisioned officers as domain values, marked Provisioned, in
// file order. Each has its own copy of its vehicle.
func (c *Config) Officers() []visit.Officer {
	out := make([]visit.Officer, 0, len(c.Directory.Officers))
	for _, o := range c.Directory.Officers {
		var v *visit.Vehicle
		if o.Vehicle != nil {
			v = &visit.Vehicle{
				Make:             o.Vehicle.Make,
				Model:            o.Vehicle.Model,
				Colour:           o.Vehicle.Colour,
				Registration:     o.Vehicle.Registration,
				InsuranceExpires: o.Vehicle.InsuranceExpires,
			}
		}
		out = append(out, visit.Officer{
			ID:          o.ID,
			Name:        o.Name,
			Phone:       o.Phone,
			School:      o.School,
			DuressCode:  o.DuressCode,
			Vehicle:     v,
			Provisioned: true,
		})
	}
	return out
}
