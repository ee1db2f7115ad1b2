package crds

// Patterns the apiserver checks in an UpgradePlan's spec.
const (
	// URLPattern: the artifact is fetched over HTTP(S).
	URLPattern = `^https?://`
	// SHA256Pattern: the artifact file's sha256, lower-case hex, as
	// sha256sum prints it.
	SHA256Pattern = `^[0-9a-f]{64}$`
	// DurationPattern: what time.ParseDuration reads (metav1.Duration),
	// "10m", "1h30m", "90s".
	DurationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
)

// upgradePlanSchema is the UpgradePlan's OpenAPI schema: exactly the
// fields of upgradeapi's types (the upgrade controller's tests hold the
// two together), so that a misspelt field is refused by kubectl rather
// than silently dropped, and a bad URL, digest or concurrency is refused
// when the plan is created, not when a node is already drained.
func upgradePlanSchema() map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	integer := func(desc string) map[string]any {
		return map[string]any{"type": "integer", "format": "int64", "description": desc}
	}
	artifact := func(role string) map[string]any {
		return map[string]any{
			"type":        "object",
			"description": "The upgrade artifact for " + role + " nodes (out/rke2-" + role + ".upgrade of rke2-build image --secrets); without one, no " + role + " is selected.",
			"required":    []any{"url", "sha256"},
			"properties": map[string]any{
				"url":    map[string]any{"type": "string", "pattern": URLPattern, "description": "http:// or https:// URL of the artifact file."},
				"sha256": map[string]any{"type": "string", "pattern": SHA256Pattern, "description": "sha256 of the artifact file, lower-case hex (sha256sum)."},
			},
		}
	}
	selector := map[string]any{
		"type":                  "object",
		"description":           "Label selector of the nodes to upgrade; empty selects every node.",
		"x-kubernetes-map-type": "atomic",
		"properties": map[string]any{
			"matchLabels": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			"matchExpressions": map[string]any{"type": "array", "items": map[string]any{
				"type":     "object",
				"required": []any{"key", "operator"},
				"properties": map[string]any{
					"key":      map[string]any{"type": "string"},
					"operator": map[string]any{"type": "string", "enum": []any{"In", "NotIn", "Exists", "DoesNotExist"}},
					"values":   map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				},
			}},
		},
	}
	spec := map[string]any{
		"type":        "object",
		"description": "Which nodes run which artifact, and how many agents at once.",
		// At least one artifact: a plan without one selects nothing.
		"anyOf": []any{
			map[string]any{"required": []any{"server"}},
			map[string]any{"required": []any{"agent"}},
		},
		"properties": map[string]any{
			"server":       artifact("server"),
			"agent":        artifact("agent"),
			"nodeSelector": selector,
			"concurrency": map[string]any{"type": "integer", "minimum": 1,
				"description": "How many agents upgrade at once (default 1); servers always go one at a time."},
			"drainTimeout": map[string]any{"type": "string", "pattern": DurationPattern,
				"description": "How long a node's drain may take (default 10m); a drain that does not finish fails the node and stops the plan."},
		},
	}
	node := map[string]any{
		"type":     "object",
		"required": []any{"name", "role", "phase"},
		"properties": map[string]any{
			"name":    str("The Node."),
			"role":    str("server or agent."),
			"phase":   str("waiting, draining, downloading, writing, rebooting, done, failed or rolled-back."),
			"reason":  str("Why the node is in this phase."),
			"osImage": str("The Node's status.nodeInfo.osImage."),
			"sha256":  str("The artifact the plan asks of the node's role."),
			"drainSince": map[string]any{"type": "string", "format": "date-time",
				"description": "When the controller cordoned the node and began its drain."},
			"requested": map[string]any{"type": "boolean",
				"description": "The drain ended and the controller asked the node to upgrade."},
		},
	}
	status := map[string]any{
		"type":        "object",
		"description": "What the upgrade controller says of the rollout.",
		"properties": map[string]any{
			"phase":              str("Rolling, Done or Failed; empty while the plan waits for an older one."),
			"done":               integer("Selected nodes done."),
			"total":              integer("Selected nodes."),
			"nodes":              map[string]any{"type": "array", "description": "Each selected node, in the order they go.", "items": node},
			"message":            str("Why the plan stopped, or what it waits for."),
			"observedGeneration": integer("The metadata.generation this status is for."),
		},
	}
	return map[string]any{
		"type":     "object",
		"required": []any{"spec"},
		"properties": map[string]any{
			"spec":   spec,
			"status": status,
		},
	}
}
