import { WorkOS } from '@workos-inc/node';

const workos = new WorkOS('sk_example_123456789');

const { authenticationFactor, authenticationChallenge } =
  await workos.userManagement.enrollAuthFactor({
    userId: 'user_01E4ZCR3C56J083X43JQXF3JK5',
    type: 'totp',
    totpIssuer: 'WorkOS',
    totpUser: 'bob@example.com',
  });
