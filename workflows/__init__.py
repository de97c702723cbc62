"""The domain: a workflow is a Haystack pipeline plus Stackyard metadata, saved as immutable versions."""
