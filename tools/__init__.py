"""Development tooling (documentation generators); not part of the installed package."""
