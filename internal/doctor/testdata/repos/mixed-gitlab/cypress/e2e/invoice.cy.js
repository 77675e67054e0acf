it('shows an invoice', () => { cy.visit('/invoices/1'); cy.contains('Total'); });
