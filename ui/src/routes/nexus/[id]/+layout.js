import { fetchNexusEndpoint } from '@temporalio/ui/services/nexus-service';
import { decodeSingleReadablePayloadWithCodec } from '@temporalio/ui/utilities/decode-payload';

// The endpoint, its description decoded for reading (null when there is no such endpoint).
export async function load({ params, fetch, parent }) {
  const { settings } = await parent();
  const found = await fetchNexusEndpoint(params.id, fetch).catch(() => null);
  const endpoint = found?.endpoint;
  if (!endpoint) return { endpoint: null };
  const description = endpoint.spec?.description?.data
    ? await decodeSingleReadablePayloadWithCodec(endpoint.spec.description, settings).catch(() => '')
    : '';
  endpoint.spec.descriptionString = typeof description === 'string' ? description : '';
  return { endpoint };
}
