"""What each page draws (images, figures, colours, tables), computed from library results; never streamlit."""
