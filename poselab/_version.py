"""The package version (its own module, so core modules can read it without importing the
package façade, which loads the chapters)."""
__version__ = "0.1.0"
