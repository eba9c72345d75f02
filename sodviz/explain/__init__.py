"""Instance maps beyond attention (ODAM, D-RISE, relevance) and how faithful each is."""
