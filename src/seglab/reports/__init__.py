"""Many run folders made into one comparison: finding and reading runs (`run_folders`), the
table (`compare`), its Markdown/CSV report and its chart. Reads run folders, never live
objects; imports runs and core."""
