resource "hcloud_server" "web" {
  count       = 2
  name        = "web-${count.index}"
  server_type = "cx22"
  image       = "debian-12"
}
