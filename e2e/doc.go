// Package e2e runs the built gdm binary against real NBD clients.
package e2e
