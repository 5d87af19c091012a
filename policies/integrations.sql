-- Third-party credentials (app.integration_credentials, sql/0440). The API encrypts them; the
-- database keeps envelopes and counts their changes. Re-appliable: create or replace, the
-- trigger too (replacing it locks out writers only; dropping it would lock out readers as well).

/*
 * Every change of a credential counts: version + 1, whatever the writer sends. The key rotation
 * (`npm run cli -- credentials rotate`) re-encrypts a row only where version is still the one it
 * read, so a secret the API stored in between is never overwritten by the old one re-encrypted.
 */
create or replace function app.count_credential_change() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  new.version := old.version + 1;
  return new;
end
$$;
revoke execute on function app.count_credential_change() from public;

create or replace trigger integration_credentials_count_change before update on app.integration_credentials
  for each row execute function app.count_credential_change();
