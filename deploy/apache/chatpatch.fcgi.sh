#!/bin/sh
# chatpatch: the wrapper mod_fcgid starts on a shared-hosting account
# (README, "Apache with mod_fcgid (shared hosting)"). Upload it as
# chatpatch.fcgi beside .htaccess, mode 0755, after editing the three
# ACCOUNT lines: where the binary is, the account's database, and a folder
# for the log (mod_fcgid discards a worker's stderr, and with it the
# access log). A shared host lets an account set no FastCGI environment
# (FcgidInitialEnv is server config only), so the database URL lives here;
# keep this file mode 0700 if others on the host can read your folder.
DATABASE_URL='postgresql://ACCOUNT@/ACCOUNT'
export DATABASE_URL
exec /home/ACCOUNT/chatpatch --log-file /home/ACCOUNT/logs/chatpatch.log
