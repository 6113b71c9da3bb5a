"""Resource instances of the deployment (overrides come from the environment's conf/)."""

from assets.resources import SampleHubResource

RESOURCES = {"samplehub": SampleHubResource()}
