// The service worker (filled in below).
