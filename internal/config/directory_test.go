package config

import (
	"testing"
)

func TestDirectory(t *testing.T) {
	t.Parallel()
	c := specExample(t)
	c.Directory.Schools = append(c.Directory.Schools, School{
		ID: "other", Name: "Other", Timezone: "Europe/Dublin",
		Contacts: map[string][]Contact{"office": {{Name: "O", Phone: "+353 1 234 5678"}}},
	})
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	schools, officers := c.Schools(), c.Officers()
	if len(schools) != 2 || len(officers) != 1 {
		t.Fatalf("got %d schools and %d officers, want 2 and 1", len(schools), len(officers))
	}
	s, o := schools[0], officers[0]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		// A school without a time zone gets the config's.
		{"default timezone", s.TimeZone, "Europe/London"},
		// A school's own time zone is kept.
		{"own timezone", schools[1].TimeZone, "Europe/Dublin"},
		// Contacts keep their lists, in E.164.
		{"contact", s.Contacts["police"][0].Phone, "+447700900301"},
		{"normalised contact", schools[1].Contacts["office"][0].Phone, "+35312345678"},
		// Everything from the file is provisioned.
		{"school provisioned", s.Provisioned, true},
		{"officer provisioned", o.Provisioned, true},
		{"officer", o.ID + " " + o.Name + " " + o.Phone + " " + o.School + " " + o.DuressCode,
			"jdoe Jane Doe +447700900101 bishop-lonsdale 4321"},
		{"vehicle", o.Vehicle.Describe(), "Blue Ford Fiesta AB12 CDE"},
		{"insurance", o.Vehicle.InsuranceExpires, "2027-03-01"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// The domain values share nothing with the Config.
	o.Vehicle.Colour = "Red"
	s.Contacts["police"][0].Phone = "+440"
	if c.Directory.Officers[0].Vehicle.Colour != "Blue" || c.Directory.Schools[0].Contacts["police"][0].Phone != "+447700900301" {
		t.Errorf("changing the domain values changed the Config")
	}
}
