import { encodePayloads } from '@temporalio/ui/utilities/encode-payload';

/** The request body for an endpoint from the form: the description travels as a JSON payload. */
export async function endpointRequest(form, endpoint = undefined) {
  const { descriptionString, allowedCallerNamespaces: _, ...spec } = form.spec;
  const [description] = await encodePayloads({ input: JSON.stringify(descriptionString), encoding: 'json/plain' });
  const body = { ...form, spec: { ...spec, description } };
  return endpoint ? { ...body, id: endpoint.id, version: endpoint.version } : body;
}
