// Every alert group of the mixin.
(import 'credentials.libsonnet')
+ (import 'expiry.libsonnet')
+ (import 'probes.libsonnet')
+ (import 'orgs.libsonnet')
+ (import 'meta.libsonnet')
