// Placeholder entry point: replaced by the issue that builds this component.
return 0;
