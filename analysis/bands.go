package analysis

// bands holds the published severity bands of the symptom scales, each as
// the lowest score of mild, moderate and severe:
//
//   - MRS (Heinemann et al., Health Qual Life Outcomes 2004;2:45): total
//     0-4 none, 5-8 mild, 9-16 moderate, 17+ severe; somatic 0-2, 3-4,
//     5-8, 9+; psychological 0-1, 2-3, 4-6, 7+; urogenital 0, 1, 2-3, 4+.
//   - AMS (Heinemann et al., 2003): total 17-26 none, 27-36 mild, 37-49
//     moderate, 50+ severe. Its subscales have no bands in common use.
var bands = map[string]map[string][3]float64{
	"mrs": {
		"total":         {5, 9, 17},
		"somatic":       {3, 5, 9},
		"psychological": {2, 4, 7},
		"urogenital":    {1, 2, 4},
	},
	"ams": {
		"total": {27, 37, 50},
	},
}

// bandNames are the bands, mildest first, as bands' arrays hold them.
var bandNames = [3]string{"mild", "moderate", "severe"}

// bandFloor returns the lowest score of band for the instrument's score.
func bandFloor(instrument, score, band string) (float64, bool) {
	floors, ok := bands[instrument][score]
	if !ok {
		return 0, false
	}
	for i, name := range bandNames {
		if name == band {
			return floors[i], true
		}
	}
	return 0, false
}
